"""The site data plane on NATS JetStream: the box's publisher and heartbeat, the site historian consumer."""
