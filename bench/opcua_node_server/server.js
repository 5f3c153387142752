#!/usr/bin/env node
// Fast OPC-UA server for bench/bench_opcua.py (node-opcua): N Double tags that change at 10 Hz.
//
//   node server.js --tags 5000 --port 48621 [--rate-hz 10] [--ns urn:factory-edge:bench-node] [--prefix tag.]
//
// Tags are Variables `ns=<index of --ns>;s=<prefix><i>` (i = 0..N-1) in the folder Objects/Bench, read
// only, DataType Double. One timer ticks every 1000 / rate-hz ms and gives every tag a new value (a level
// per tag, a slow sine, noise; source and server timestamp = the tick).
//
// Monitored items on these tags are delivered on change (exception-based): the tick paces the data, every
// tick reaches every item once, whatever sampling interval the client asked for (the revised interval it is
// told stays what node-opcua answers, e.g. 100 ms). node-opcua would otherwise sample each item on a timer of
// its own, through an access-checked asynchronous read per item per sample (about 50 us of CPU per value
// here, as slow as the asyncua simulator), and a separate update timer beside the sampling timer drifts in
// and out of phase with it, losing or duplicating samples.
//
// Security None, anonymous; limits raised for tens of thousands of monitored items. Prints
// "serving opc.tcp://HOST:PORT TAGS tags ..." once it listens, then every second a cumulative
// "stats t_ms=.. ticks=.. skipped=.. late=.. max_late_ms=.." line; stops on SIGTERM/SIGINT.
"use strict";

const os = require("os");
const path = require("path");
const {
    OPCUAServer,
    OPCUACertificateManager,
    DataType,
    DataValue,
    Variant,
    StatusCodes,
    MessageSecurityMode,
    SecurityPolicy,
    Subscription,
    MonitoredItem,
    AttributeIds,
    nodesets
} = require("node-opcua");

function parseArgs(argv) {
    const opts = { tags: 5000, port: 48621, rateHz: 10, ns: "urn:factory-edge:bench-node", prefix: "tag." };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === "--tags") opts.tags = parseInt(next(), 10);
        else if (a === "--port") opts.port = parseInt(next(), 10);
        else if (a === "--rate-hz") opts.rateHz = parseFloat(next());
        else if (a === "--ns") opts.ns = next();
        else if (a === "--prefix") opts.prefix = next();
        else if (a === "-h" || a === "--help") {
            process.stdout.write("usage: node server.js [--tags N] [--port P] [--rate-hz HZ] [--ns URI] [--prefix P]\n");
            process.exit(0);
        } else throw new Error(`unknown argument ${a}`);
    }
    if (!(opts.tags > 0) || !(opts.port > 0) || !(opts.rateHz > 0)) throw new Error("tags, port, rate-hz must be > 0");
    return opts;
}

async function main() {
    let opts;
    try {
        opts = parseArgs(process.argv.slice(2));
    } catch (err) {
        process.stderr.write(`${err.message}\n`);
        process.exit(2);
    }
    // node-opcua caps a publish response at this many notifications (default 1,000): the clients ask for
    // no cap, so let one response carry a whole subscription's tick
    Subscription.maxNotificationPerPublishHighLimit = 100000;

    const pkiRoot = path.join(os.tmpdir(), "fe-opcua-node-server-pki");
    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: pkiRoot,
        automaticallyAcceptUnknownCertificate: true
    });
    const server = new OPCUAServer({
        port: opts.port,
        resourcePath: "/",
        nodeset_filename: [nodesets.standard],
        serverCertificateManager,
        securityModes: [MessageSecurityMode.None],
        securityPolicies: [SecurityPolicy.None],
        allowAnonymous: true,
        maxConnectionsPerEndpoint: 100,
        serverCapabilities: {
            maxSessions: 100,
            maxSubscriptions: 1000,
            maxSubscriptionsPerSession: 100,
            maxMonitoredItems: 1000000,
            maxMonitoredItemsPerSubscription: 100000,
            maxMonitoredItemsQueueSize: 60000,
            operationLimits: {
                maxMonitoredItemsPerCall: 100000,
                maxNodesPerRead: 100000,
                maxNodesPerBrowse: 100000,
                maxNodesPerTranslateBrowsePathsToNodeIds: 100000
            }
        },
        buildInfo: { productName: "factory-edge bench OPC-UA server (node-opcua)" }
    });
    await server.initialize();

    const addressSpace = server.engine.addressSpace;
    const namespace = addressSpace.registerNamespace(opts.ns);
    const folder = namespace.addFolder(addressSpace.rootFolder.objects, { browseName: "Bench" });
    const periodMs = 1000 / opts.rateHz;
    const nsIndex = namespace.index;

    // exception-based delivery for the items on our tags (see the header)
    const startSampling = MonitoredItem.prototype.__start_sampling;
    MonitoredItem.prototype.__start_sampling = function (recordInitialValue) {
        if (this.node && this.node.nodeId.namespace === nsIndex &&
            this.itemToMonitor.attributeId === AttributeIds.Value) {
            this._exceptionBased = true;
            this.samplingInterval = 0; // no coalescing window: every change is recorded
        }
        return startSampling.call(this, recordInitialValue);
    };

    const vars = new Array(opts.tags);
    const level = new Float64Array(opts.tags);
    const amp = new Float64Array(opts.tags);
    const omega = new Float64Array(opts.tags);
    const phase = new Float64Array(opts.tags);
    const t0 = Date.now();
    for (let i = 0; i < opts.tags; i++) {
        // plausible process values: a level, a slow sine (10-60 s period) and noise
        level[i] = 20 + (i % 97) * 1.5;
        amp[i] = 1 + (i % 13) * 0.25;
        omega[i] = (2 * Math.PI) / (10000 + (i % 50) * 1000);
        phase[i] = (i * 0.7) % (2 * Math.PI);
        vars[i] = namespace.addVariable({
            componentOf: folder,
            browseName: `${opts.prefix}${i}`,
            nodeId: `s=${opts.prefix}${i}`,
            dataType: "Double",
            minimumSamplingInterval: 0,
            value: new Variant({ dataType: DataType.Double, value: level[i] + amp[i] * Math.sin(phase[i]) })
        });
    }
    const good = StatusCodes.Good;
    const tick = () => {
        const now = new Date();
        const t = now.getTime() - t0;
        for (let i = 0; i < opts.tags; i++) {
            const v = level[i] + amp[i] * Math.sin(omega[i] * t + phase[i]) + (Math.random() - 0.5) * 0.02 * amp[i];
            // what setValueFromSource ends in (new $dataValue, "value_changed" to the monitored items),
            // without its coercion, compatibility check and clone (a few % of the server's CPU)
            const dv = new DataValue(null);
            dv.value = new Variant({ dataType: DataType.Double, value: v });
            dv.statusCode = good;
            dv.sourceTimestamp = now;
            dv.serverTimestamp = now;
            const node = vars[i];
            node.$dataValue = dv;
            node.emit("value_changed", dv);
        }
    };
    // ticks on an absolute schedule (t0 + k x period): setInterval would start each period when the previous
    // tick ran, so a busy event loop would lower the rate. A tick that is late runs at once; more than
    // MAX_BEHIND periods behind, the missed ticks are skipped (and counted).
    const MAX_BEHIND = 10;
    let ticks = 0;
    let skipped = 0;
    let late = 0; // ticks that ran more than one period after their due time
    let maxLateMs = 0;
    let due = Date.now() + periodMs;
    let timer = null;
    const schedule = () => {
        const now = Date.now();
        const lateMs = now - due;
        if (lateMs > periodMs * MAX_BEHIND) {
            const missed = Math.floor(lateMs / periodMs);
            skipped += missed;
            due += missed * periodMs;
        }
        if (now >= due) {
            const lateNow = now - due;
            if (lateNow > periodMs) late++;
            maxLateMs = Math.max(maxLateMs, lateNow);
            tick();
            ticks++;
            due += periodMs;
        }
        timer = setTimeout(schedule, Math.max(0, due - Date.now()));
    };
    timer = setTimeout(schedule, periodMs);
    // one line a second (cumulative): bench_opcua.py reads the tick rate per phase from it
    const startedAt = Date.now();
    const statsTimer = setInterval(() => {
        process.stdout.write(`stats t_ms=${Date.now() - startedAt} ticks=${ticks} skipped=${skipped} ` +
            `late=${late} max_late_ms=${maxLateMs}\n`);
    }, 1000);

    await server.start();
    const url = `opc.tcp://127.0.0.1:${opts.port}`;
    process.stdout.write(`serving ${url} ${opts.tags} tags ns=${opts.ns} every ${periodMs} ms\n`);

    let stopping = false;
    const stop = async () => {
        if (stopping) return;
        stopping = true;
        clearTimeout(timer);
        clearInterval(statsTimer);
        try {
            await server.shutdown(0);
        } finally {
            process.exit(0);
        }
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
