// dd_device.js: the DeepDrummer device's logic, for Max's [js] object (ES5, no Max-only syntax).
//
// It speaks the engine's OSC API (docs/osc-api.md) through [udpsend]/[udpreceive], keeps the
// loops the engine hands out, writes them into the native sequencer's [coll] and drives the
// display. Nothing time-critical runs here: [js] always runs in Max's low-priority thread, so
// the notes are played by native objects (metro, coll, makenote, midiout / play~) and this file
// only prepares their data. Max globals (outlet, post, messagename, jsarguments, Buffer) are
// looked up at call time, so node can load the file for the unit tests (tests/js/).
//
// Inlet messages (from the patch):
//   init                      live.thisdevice: the device is ready (ports, probe, hello)
//   heartbeat                 every second: pings, reconnection, retries
//   like / dislike / next     the buttons
//   lock <track> <0|1>        the lock toggles
//   autonext <0|1>, fotf <0|1>, engineport <port>
//   session <name>            the stored session name, restored by [pattr] with the Live set
//   tick <raw ticks>          every sixteenth while Live plays (bar lines -> /dd/transport/bar)
//   tempo <bpm>               Live's tempo
//   key <coll key>            the sequencer's key for this sixteenth: slot * 16 + step
//   transport <0|1>           Live's transport started or stopped
//   enabled <0|1>             the device's on/off switch
//   loaded <buffer index>     (Sampler) a buffer~ finished reading its file
//   free                      the device is being removed
//   /dd/...                   the engine's replies, from [udpreceive] (docs/osc-api.md)
// Outlets: 0 engine ([udpsend] to the engine), 1 local ([udpreceive] port and the port probe),
//          2 sequencer ([coll] data, slot switching, Sampler buffers), 3 display.

inlets = 1;
outlets = 4;

var OUT_ENGINE = 0;
var OUT_LOCAL = 1;
var OUT_SEQ = 2;
var OUT_UI = 3;

var API_VERSION = "1";
var CLIENT_NAME = "DeepDrummer.amxd";
var TRACKS = 4;
var STEPS = 16;
var SLOTS = 3;            // three pattern slots in the [coll]: playing, armed, being written
var TICKS_PER_STEP = 120; // Max's transport counts 480 ticks per quarter note
var PING_EVERY = 2;       // heartbeats (seconds) between pings
var LOST_AFTER = 6;       // heartbeats without any reply before we call the engine lost
var PROBE_PATIENCE = 3;   // heartbeats to wait for our own probe before trying another port
var PROBE_TRIES = 5;
var MESSAGE_BEATS = 5;    // heartbeats a short message stays in the status line
var REPLY_PORT_MIN = 20000;
var REPLY_PORT_SPAN = 20000;
var DEFAULT_ENGINE_PORT = 9000;
var BPM_MIN = 20;
var BPM_MAX = 400;
var BUFFERS = SLOTS * TRACKS;
// library.py's decoding, which the Sampler repeats so Live plays what the critic heard.
var SILENCE = Math.pow(10, -60 / 20);
var MAX_SECONDS = 2.0;
var FADE_SECONDS = 0.005;
var MAX_LEADING_SECONDS = 5.0;

var mode = "midi";        // "midi" (DeepDrummer.amxd) or "sampler" (DeepDrummer Sampler.amxd)
var state;

function freshState() {
    return {
        started: false,
        enginePort: DEFAULT_ENGINE_PORT,
        replyPort: 0,
        probeToken: 0,
        probeOk: false,
        probeAge: 0,
        probeTries: 0,
        connected: false,
        everConnected: false,
        beats: 0,
        silentBeats: 0,
        pingToken: 0,
        engineSession: "",
        storedSession: "",
        apiVersion: "",
        loops: {},            // loop_id -> loop being assembled or complete
        handedOrder: [],      // loop ids, oldest first (bounded)
        requestId: 0,
        wantNext: false,
        slotLoop: [null, null, null],
        audibleSlot: 0,
        armedSlot: 0,
        audibleId: null,
        rated: {},
        locks: [0, 0, 0, 0],
        autoNext: 1,
        fotf: 0,
        playing: false,
        enabled: true,
        bpm: 0,
        step: -1,
        stats: null,
        likes: 0,
        message: "",
        messageBeats: 0,
        uid: "",
        bufferPath: [],       // buffer index -> sample path loaded there
        bufferName: []
    };
}

state = freshState();

// -- Max glue (guarded so node can load this file) ---------------------------------------
function emit(index, args) {
    if (typeof outlet === "function") {
        outlet.apply(null, [index].concat(args));
    }
}

function argsOf(args) {
    return Array.prototype.slice.call(args);
}

function isInt(x) {
    return typeof x === "number" && isFinite(x) && Math.floor(x) === x;
}

function toText(parts) {
    var out = [];
    for (var i = 0; i < parts.length; i++) {
        if (i === 0 && parts[i] === "symbol" && parts.length > 1) {
            continue;  // Max may hand a lone symbol over as "symbol <name>"
        }
        out.push(String(parts[i]));
    }
    return out.join(" ");
}

// -- messages to the engine --------------------------------------------------------------
function engine(address) {
    var args = argsOf(arguments).slice(1);
    emit(OUT_ENGINE, [address].concat(args));
}

function hello() {
    engine("/dd/hello", state.replyPort, CLIENT_NAME);
}

function requestNext() {
    state.requestId += 1;
    state.wantNext = false;
    engine("/dd/next", state.requestId);
}

// -- set-up ------------------------------------------------------------------------------
function init() {
    if (typeof jsarguments !== "undefined" && jsarguments.length > 1) {
        mode = String(jsarguments[1]) === "sampler" ? "sampler" : "midi";
    }
    // Parameters are restored, and the transport reported, before the device says it is ready.
    var kept = ["enginePort", "storedSession", "locks", "autoNext", "fotf", "playing", "bpm",
        "enabled"];
    var old = state;
    state = freshState();
    for (var i = 0; i < kept.length; i++) {
        state[kept[i]] = old[kept[i]];
    }
    state.started = true;
    state.uid = "dd" + randomInt(100000, 999999) + "_";
    clearSlots();
    if (mode === "sampler") {
        nameBuffers();
    }
    emit(OUT_ENGINE, ["port", state.enginePort]);
    openReplyPort();
    hello();
    ui("grid", ["clear"]);
    show();
}

function randomInt(lo, hi) {
    return lo + Math.floor(Math.random() * (hi - lo));
}

function openReplyPort() {
    state.replyPort = randomInt(REPLY_PORT_MIN, REPLY_PORT_MIN + REPLY_PORT_SPAN);
    state.probeToken = randomInt(2000000, 2000000000);
    state.probeOk = false;
    state.probeAge = 0;
    state.probeTries += 1;
    emit(OUT_LOCAL, ["port", state.replyPort]);
    // Send ourselves a pong: if it comes back, [udpreceive] really listens on that port.
    emit(OUT_LOCAL, ["/dd/pong", state.probeToken]);
}

function clearSlots() {
    for (var slot = 0; slot < SLOTS; slot++) {
        for (var step = 0; step < STEPS; step++) {
            emit(OUT_SEQ, ["coll", slot * STEPS + step].concat(restRow(slot)));
        }
    }
    emit(OUT_SEQ, ["arm", 0]);
    emit(OUT_SEQ, ["now"]);
}

function restRow(slot) {
    var row = [];
    for (var t = 0; t < TRACKS; t++) {
        row.push(0, slot * TRACKS + t, 36);
    }
    return row;
}

function nameBuffers() {
    for (var k = 0; k < BUFFERS; k++) {
        state.bufferName[k] = state.uid + "b" + k;
        state.bufferPath[k] = "";
        emit(OUT_SEQ, ["bufname", k, state.bufferName[k]]);
    }
}

// -- heartbeat: liveness, reconnection, retries --------------------------------------------
function heartbeat() {
    if (!state.started) {
        return;
    }
    state.beats += 1;
    state.silentBeats += 1;
    if (state.message) {
        state.messageBeats += 1;
        if (state.messageBeats > MESSAGE_BEATS) {
            say("");
            show();
        }
    }
    if (!state.probeOk) {
        state.probeAge += 1;
        if (state.probeAge >= PROBE_PATIENCE && state.probeTries < PROBE_TRIES) {
            openReplyPort();
            hello();
        }
    }
    if (state.connected && state.silentBeats > LOST_AFTER) {
        state.connected = false;
        say("");
        show();
    }
    if (!state.connected) {
        if (state.beats % PING_EVERY === 0) {
            hello();
        }
        show();
        return;
    }
    if (state.beats % PING_EVERY === 0) {
        state.pingToken = state.pingToken % 1000000 + 1;
        engine("/dd/ping", state.pingToken);
    }
    if (state.wantNext) {
        requestNext();
    }
}

// -- the engine's replies ----------------------------------------------------------------
var REPLIES = {
    "/dd/hello": onHello,
    "/dd/pong": onPong,
    "/dd/loop": onLoop,
    "/dd/loop/track": onLoopTrack,
    "/dd/rated": onRated,
    "/dd/status": onStatus,
    "/dd/lock": onLock,
    "/dd/fotf": onFotf,
    "/dd/error": onError
};

function anything() {
    var name = typeof messagename !== "undefined" ? messagename : "";
    var handler = REPLIES[name];
    if (handler) {
        if (name !== "/dd/pong") {
            heard();
        }
        handler.apply(null, argsOf(arguments));
    }
}

function heard() {
    state.silentBeats = 0;
}

function onHello(version, session) {
    var wasConnected = state.connected;
    state.apiVersion = String(version);
    state.engineSession = session === undefined ? "" : String(session);
    state.connected = true;
    state.everConnected = true;
    if (!state.storedSession) {
        adoptSession();
    }
    if (!wasConnected) {
        engine("/dd/start_listen/status");
        for (var t = 0; t < TRACKS; t++) {
            engine("/dd/lock", t, state.locks[t], state.locks[t]);
        }
        engine("/dd/fotf", state.fotf);
        if (!state.audibleId) {
            requestNext();
        }
    }
    show();
}

function adoptSession() {
    if (state.engineSession && state.storedSession !== state.engineSession) {
        state.storedSession = state.engineSession;
        ui("session", [state.engineSession]);
    }
}

function onPong(token) {
    if (token === state.probeToken) {
        state.probeOk = true;
        show();
        return;
    }
    heard();
}

function onLoop(requestId, loopId, score, bpm, steps, tracks) {
    loopId = String(loopId);
    if (steps !== STEPS || tracks < 1 || tracks > TRACKS) {
        say("Loop format " + tracks + "x" + steps + " is not supported");
        show();
        return;
    }
    state.loops[loopId] = {
        id: loopId, requestId: requestId, score: score, bpm: bpm, steps: steps,
        tracks: tracks, rows: [], received: 0
    };
    state.handedOrder.push(loopId);
    while (state.handedOrder.length > 64) {
        delete state.loops[state.handedOrder.shift()];
    }
}

function onLoopTrack(loopId, track, note) {
    var loop = state.loops[String(loopId)];
    var values = argsOf(arguments);
    if (!loop || !isInt(track) || track < 0 || track >= loop.tracks || loop.rows[track]) {
        return;
    }
    var velocities = values.slice(4, 4 + STEPS);
    while (velocities.length < STEPS) {
        velocities.push(0);
    }
    loop.rows[track] = { note: note, path: String(values[3]), velocities: velocities };
    loop.received += 1;
    if (loop.received === loop.tracks) {
        loopReady(loop);
    }
}

function loopReady(loop) {
    var slot = freeSlot();
    writeSlot(slot, loop);
    state.slotLoop[slot] = loop.id;
    state.armedSlot = slot;
    emit(OUT_SEQ, ["arm", slot * STEPS]);
    if (!state.playing || state.audibleId === null) {
        // Nothing is playing: the new loop takes over at once; otherwise at the next bar line.
        emit(OUT_SEQ, ["now"]);
        becomeAudible(slot);
    } else {
        ui("grid", ["pending", 1]);
    }
    show();
}

function freeSlot() {
    // Neither the slot playing now nor the one armed for the next bar: the sequencer may switch
    // to the armed one at any moment, so only the third slot is safe to write into.
    for (var slot = 0; slot < SLOTS; slot++) {
        if (slot !== state.audibleSlot && slot !== state.armedSlot) {
            return slot;
        }
    }
    return (state.audibleSlot + 1) % SLOTS;
}

function writeSlot(slot, loop) {
    for (var step = 0; step < STEPS; step++) {
        var row = [];
        for (var t = 0; t < TRACKS; t++) {
            var track = loop.rows[t];
            if (track) {
                row.push(track.velocities[step], slot * TRACKS + t, track.note);
            } else {
                row.push(0, slot * TRACKS + t, 36);
            }
        }
        emit(OUT_SEQ, ["coll", slot * STEPS + step].concat(row));
    }
    if (mode === "sampler") {
        for (var k = 0; k < loop.tracks; k++) {
            loadSample(slot * TRACKS + k, loop.rows[k].path);
        }
    }
}

function becomeAudible(slot) {
    state.audibleSlot = slot;
    var loopId = state.slotLoop[slot];
    if (loopId === state.audibleId) {
        return;
    }
    state.audibleId = loopId;
    drawLoop(state.loops[loopId]);
    ui("grid", ["pending", state.armedSlot !== slot ? 1 : 0]);
}

function drawLoop(loop) {
    if (!loop) {
        return;
    }
    for (var t = 0; t < TRACKS; t++) {
        var row = loop.rows[t];
        if (row) {
            ui("grid", ["track", t, row.note].concat(row.velocities));
        } else {
            ui("grid", ["track", t, 0].concat(zeros(STEPS)));
        }
    }
}

function zeros(n) {
    var out = [];
    for (var i = 0; i < n; i++) {
        out.push(0);
    }
    return out;
}

function onRated(loopId, count, likes) {
    state.rated[String(loopId)] = true;
    if (state.stats) {
        state.stats.ratings = count;
    }
    state.likes = likes;
    say("Rated: " + count + " ratings, " + likes + " liked");
    adoptSession();  // the user rates in this session: it is the set's session from now on
    show();
}

function onStatus(ratings, queue, training, version, device) {
    state.stats = {
        ratings: ratings, queue: queue, training: training, version: version,
        device: device === undefined ? "" : String(device)
    };
    show();
}

function onLock(track, grid, sample) {
    if (isInt(track) && track >= 0 && track < TRACKS) {
        ui("grid", ["lock", track, grid || sample ? 1 : 0]);
    }
}

function onFotf(on) {
    say(on ? "Four on the floor" : "");
    show();
}

function onError(address, code, text) {
    code = String(code);
    if (code === "busy" && address === "/dd/next") {
        state.wantNext = true;  // asked again at the next heartbeat
        say("The engine is still warming up; asking again...");
    } else if (code === "already_rated") {
        say("This loop is already rated");
    } else if (code === "unknown_loop") {
        say("The engine does not know this loop (was it restarted?)");
        state.wantNext = true;
    } else {
        say("Engine: " + String(text));
    }
    show();
}

// -- controls ----------------------------------------------------------------------------
function like() {
    rate(1);
}

function dislike() {
    rate(0);
}

function rate(liked) {
    if (!state.connected) {
        show();
        return;
    }
    if (!state.audibleId) {
        say("No loop yet: press Next");
    } else if (state.rated[state.audibleId]) {
        say("This loop is already rated");
    } else {
        engine("/dd/rate", state.audibleId, liked);
        state.rated[state.audibleId] = true;
        say(liked ? "Liked" : "Disliked");
        if (state.autoNext) {
            requestNext();
        }
    }
    show();
}

function next() {
    if (state.connected) {
        requestNext();
        say("Next loop at the next bar");
    }
    show();
}

function lock(track, on) {
    if (!isInt(track) || track < 0 || track >= TRACKS) {
        return;
    }
    state.locks[track] = on ? 1 : 0;
    ui("grid", ["lock", track, state.locks[track]]);
    if (state.connected) {
        engine("/dd/lock", track, state.locks[track], state.locks[track]);
    }
}

function autonext(on) {
    state.autoNext = on ? 1 : 0;
}

function fotf(on) {
    state.fotf = on ? 1 : 0;
    if (state.connected) {
        engine("/dd/fotf", state.fotf);
    }
}

function engineport(port) {
    port = Math.round(port);
    if (!(port >= 1 && port <= 65535) || port === state.enginePort) {
        return;
    }
    state.enginePort = port;
    if (state.started) {
        emit(OUT_ENGINE, ["port", port]);
        state.connected = false;
        hello();
        show();
    }
}

function session() {
    var name = toText(argsOf(arguments));
    if (name === "0" || name === "bang") {
        name = "";
    }
    state.storedSession = name;
    if (state.started) {
        show();
    }
}

// -- transport and sequencer ---------------------------------------------------------------
function tick(ticks) {
    var sixteenth = Math.round(ticks / TICKS_PER_STEP);
    state.playing = true;
    if (sixteenth % STEPS === 0 && state.connected) {
        var bar = Math.floor(sixteenth / STEPS);
        if (bar >= 0) {
            if (state.bpm >= BPM_MIN && state.bpm <= BPM_MAX) {
                engine("/dd/transport/bar", bar, state.bpm);
            } else {
                engine("/dd/transport/bar", bar);
            }
        }
    }
}

function tempo(bpm) {
    state.bpm = bpm;
}

function key(k) {
    var slot = Math.floor(k / STEPS);
    state.step = k % STEPS;
    if (slot !== state.audibleSlot || state.slotLoop[slot] !== state.audibleId) {
        becomeAudible(slot);
        show();
    }
    ui("grid", ["step", state.step]);
}

function transport(on) {
    state.playing = !!on;
    if (!on) {
        state.step = -1;
        ui("grid", ["step", -1]);
        if (state.armedSlot !== state.audibleSlot && state.slotLoop[state.armedSlot]) {
            emit(OUT_SEQ, ["now"]);
            becomeAudible(state.armedSlot);
        }
    }
    show();
}

function enabled(on) {
    state.enabled = !!on;
    show();
}

function free() {
    if (state.started) {
        engine("/dd/bye");
    }
    state.started = false;
}

function notifydeleted() {
    free();
}

// -- Sampler: the engine's own one-shots, decoded as library.py decodes them ----------------
function loadSample(k, path) {
    if (state.bufferPath[k] === path) {
        return;
    }
    state.bufferPath[k] = path;
    emit(OUT_SEQ, ["sample", k, path]);
}

function loaded(k) {
    if (typeof Buffer === "undefined" || !state.bufferName[k]) {
        return;
    }
    var buffer = new Buffer(state.bufferName[k]);
    var frames = buffer.framecount();
    var channels = buffer.channelcount();
    var ms = buffer.length();
    if (frames <= 0 || ms <= 0) {
        return;
    }
    var rate = Math.round(frames / (ms / 1000));
    var data = [];
    for (var c = 1; c <= channels; c++) {
        data.push(buffer.peek(c, 0, frames));
    }
    var mono = conform(data, rate, MAX_SECONDS);
    if (!mono) {
        say("Sample " + state.bufferPath[k] + " is silent");
        show();
        return;
    }
    buffer.send("sizeinsamps", mono.length, 1);
    buffer.poke(1, 0, mono);
}

function conform(channels, rate, maxSeconds) {
    // library.decode_one_shot: mono mean, peak-normalised, leading silence trimmed, capped.
    var count = channels.length;
    var n = Math.min(channels[0].length, Math.floor((maxSeconds + MAX_LEADING_SECONDS) * rate));
    var mono = [];
    var peak = 0;
    for (var i = 0; i < n; i++) {
        var sum = 0;
        for (var c = 0; c < count; c++) {
            sum += channels[c][i];
        }
        mono.push(sum / count);
        if (Math.abs(mono[i]) > peak) {
            peak = Math.abs(mono[i]);
        }
    }
    if (!(peak > 1e-6)) {
        return null;
    }
    var start = 0;
    for (i = 0; i < n; i++) {
        mono[i] = mono[i] / peak;
    }
    for (i = 0; i < n; i++) {
        if (Math.abs(mono[i]) > SILENCE) {
            start = i;
            break;
        }
    }
    var cap = Math.floor(maxSeconds * rate);
    var out = mono.slice(start, start + cap);
    if (out.length === cap) {
        var fade = Math.min(out.length, Math.floor(FADE_SECONDS * rate));
        for (i = 0; i < fade; i++) {
            var gain = fade > 1 ? 1 - i / (fade - 1) : 1;
            out[out.length - fade + i] *= gain;
        }
    }
    return out;
}

// -- display -----------------------------------------------------------------------------
function say(text) {
    state.message = text;
    state.messageBeats = 0;
}

function ui(target, args) {
    emit(OUT_UI, [target].concat(args));
}

function statusLines() {
    var portHint = state.enginePort === DEFAULT_ENGINE_PORT ? "" : " --osc-port " + state.enginePort;
    if (!state.enabled) {
        return ["Device off", ""];
    }
    if (!state.connected) {
        var first = state.everConnected ? "Lost the engine at 127.0.0.1:" + state.enginePort
            : "No engine at 127.0.0.1:" + state.enginePort;
        var second = "Start it: deepdrummer-live serve" + portHint;
        if (!state.probeOk && state.probeAge >= PROBE_PATIENCE) {
            second = "Cannot listen on port " + state.replyPort + " (firewall?)";
        }
        return [first, second];
    }
    var line1 = "Connected";
    if (state.apiVersion && state.apiVersion !== API_VERSION) {
        line1 = "Engine speaks API v" + state.apiVersion + ", device v" + API_VERSION;
    } else if (state.storedSession && state.engineSession &&
               state.storedSession !== state.engineSession) {
        line1 = "Set uses session " + state.storedSession + ", engine runs " +
            state.engineSession + ": restart with serve --session " + state.storedSession;
    } else if (state.engineSession) {
        line1 = "Session " + state.engineSession;
    }
    var parts = [];
    if (state.stats) {
        parts.push(state.stats.ratings + " ratings");
        parts.push(state.stats.training ? "training" : "idle");
        parts.push("critic v" + state.stats.version);
        if (state.stats.device) {
            parts.push(state.stats.device);
        }
    }
    if (!state.playing) {
        parts.push("press Play in Live");
    }
    var line2 = state.message ? state.message + " | " + parts.join(" | ") : parts.join(" | ");
    return [line1, line2];
}

function show() {
    var lines = statusLines();
    ui("status1", ["set", lines[0]]);
    ui("status2", ["set", lines[1]]);
}

// Helpers are not messages: Max must not call them when a message of the same name arrives.
var HELPERS = [freshState, emit, argsOf, isInt, toText, engine, hello, requestNext, randomInt,
    openReplyPort, clearSlots, restRow, nameBuffers, heard, onHello, adoptSession, onPong, onLoop,
    onLoopTrack, loopReady, freeSlot, writeSlot, becomeAudible, drawLoop, zeros, onRated,
    onStatus, onLock, onFotf, onError, rate, loadSample, conform, say, ui, statusLines, show];
for (var h = 0; h < HELPERS.length; h++) {
    HELPERS[h].local = 1;
}

// For node: hand the internals to the tests without touching Max's global scope.
if (typeof module !== "undefined" && module.exports) {
    module.exports = { conform: conform };
}
