"""A cut batch to envelopes (samples, dead letters, events) whose acknowledgement sends the batch's QoS 1
PUBACKs, and the codec's commands published."""

from __future__ import annotations

from collections.abc import Callable

from edge.core.envelope import Envelope, join_acks
from ingest.codecs import Command
from ingest.sources.mqtt.batch import Batch, batch_of_events
from ingest.sources.mqtt.state import SourceState


class Acknowledgements(SourceState):
    """Envelopes from batches; PUBACKs once every envelope of a batch has been acknowledged."""

    def _envelopes(self, cur: Batch) -> list[Envelope]:
        d = cur.decoded
        now = self._now_us()
        envelopes: list[Envelope] = []
        dead_batches = []
        res = cur.result
        if res is None:  # decoded here, a chunk at a time
            samples = d.to_samples(now)
            if len(d.dead):
                for reason, count in d.dead.counters.items():
                    self.counters[f"dead_letter:{reason}"] += count
                dead_batches.append(d.dead.take_batch())
        else:  # decoded whole, by a worker or here
            cur.fold(res)
            self.counters["messages"] += res.n_msgs
            samples = res.samples
            if res.dead is not None:
                for reason, count in res.dead_counts.items():
                    self.counters[f"dead_letter:{reason}"] += count
                dead_batches.append(res.dead)
            d.events.extend(res.events)
            self._publish_commands(res.commands)
            if samples.num_rows and cur.n_bytes:
                self._bytes_per_row = 0.8 * self._bytes_per_row + 0.2 * (cur.n_bytes / samples.num_rows)
                self._cut_bytes = self.batch_rows * self._bytes_per_row
        batch_id = cur.batch_id()
        if self._journal is not None and cur.first_key is not None and cur.replay_id is None:
            self._journal.record(cur.first_key, cur.n_msgs, batch_id)  # before anything can be committed
        if self.gate is not None and samples.num_rows:
            samples, gated = self.gate.apply(samples, now)
            if gated.num_rows:
                dead_batches.append(gated)
        self.counters["samples"] += samples.num_rows
        if samples.num_rows:
            envelopes.append(Envelope("samples", samples, batch_id))
        for i, dl in enumerate(dead_batches):
            envelopes.append(Envelope("dead_letters", dl, f"{batch_id}-dl{i}"))
        if d.events:
            envelopes.append(Envelope("events", batch_of_events(d.events, self.name), cur.events_id()))
        mids, generation = cur.mids, cur.generation
        self.counters["acks_dropped"] += cur.dropped_mids
        self.counters["redelivered"] += cur.redelivered
        if mids:
            with self._unacked_lock:
                self._unacked += len(mids)
            ack_all = self._acker(mids, generation)
            if envelopes:
                for env, part_done in zip(envelopes, join_acks([ack_all], len(envelopes)), strict=True):
                    env.acks.append(part_done)
            else:
                ack_all()
        self.counters["batches"] += 1
        return envelopes

    def _acker(self, mids: list[int], generation: int) -> Callable[[], None]:
        def ack() -> None:
            client = self._client
            if client is not None and generation == self._generation:
                # last message first: if the process dies halfway, what the broker has not seen acknowledged
                # (and delivers again) is the beginning of the cut, which the cut journal knows by its key
                for mid in reversed(mids):
                    client.ack(mid, 1)
                self.counters["acked"] += len(mids)
            else:  # the connection that delivered them is gone: the broker delivers them again
                self.counters["acks_dropped"] += len(mids)
            with self._unacked_lock:
                self._unacked -= len(mids)

        return ack

    def _publish_commands(self, commands: list[Command]) -> None:
        client = self._client
        if commands and client is not None:
            for cmd in commands:
                client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)
                self.counters["commands_published"] += 1
