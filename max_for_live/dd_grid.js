// dd_grid.js: the 4 x 16 grid of the playing loop, for Max's [jsui] (ES5).
//
// Display only: the Like / Dislike / Next buttons and the lock toggles are live.* parameters,
// so they can be MIDI-mapped and are saved with the Live set. Messages (from dd_device.js):
//   clear                          empty grid
//   track <t> <note> <v0> ... <v15>  one track: its GM note (named on the left) and velocities
//   lock <t> <0|1>                 draw the track as locked
//   step <s>                       the playhead (-1: none)
//   pending <0|1>                  a new loop starts at the next bar line
// Max globals (mgraphics, box) are looked up at call time, so node can load this file.

inlets = 1;
outlets = 0;

var TRACKS = 4;
var STEPS = 16;
var LABEL_WIDTH = 44;
var GM_NAMES = {
    35: "Kick", 36: "Kick", 37: "Stick", 38: "Snare", 39: "Clap", 40: "Snare", 41: "Tom",
    42: "Hat", 43: "Tom", 44: "Pedal hat", 45: "Tom", 46: "Open hat", 47: "Tom", 48: "Tom",
    49: "Crash", 50: "Tom", 51: "Ride", 52: "China", 53: "Bell", 54: "Tamb", 55: "Splash",
    56: "Cowbell", 57: "Crash", 59: "Ride", 60: "Bongo", 61: "Bongo", 62: "Conga",
    63: "Conga", 64: "Conga", 69: "Cabasa", 70: "Maracas", 75: "Claves", 76: "Block",
    77: "Block", 81: "Triangle"
};
var COLORS = {
    background: [0.12, 0.12, 0.12, 1.0],
    cell: [0.22, 0.22, 0.22, 1.0],
    beat: [0.27, 0.27, 0.27, 1.0],
    hit: [1.0, 0.63, 0.18, 1.0],
    locked: [0.38, 0.72, 1.0, 1.0],
    playhead: [1.0, 1.0, 1.0, 0.25],
    text: [0.85, 0.85, 0.85, 1.0],
    pending: [1.0, 0.63, 0.18, 0.9]
};

var grid = emptyGrid();

function emptyGrid() {
    var rows = [];
    for (var t = 0; t < TRACKS; t++) {
        var velocities = [];
        for (var s = 0; s < STEPS; s++) {
            velocities.push(0);
        }
        rows.push({ note: 0, velocities: velocities, locked: 0 });
    }
    return { rows: rows, step: -1, pending: 0 };
}

function roleName(note) {
    if (!note) {
        return "";
    }
    return GM_NAMES[note] || ("Note " + note);
}

function redraw() {
    if (typeof mgraphics !== "undefined") {
        mgraphics.redraw();
    }
}

// -- messages ------------------------------------------------------------------------------
function clear() {
    var locks = [];
    for (var t = 0; t < TRACKS; t++) {
        locks.push(grid.rows[t].locked);
    }
    grid = emptyGrid();
    for (t = 0; t < TRACKS; t++) {
        grid.rows[t].locked = locks[t];
    }
    redraw();
}

function track(t, note) {
    if (t < 0 || t >= TRACKS || Math.floor(t) !== t) {
        return;
    }
    var row = grid.rows[t];
    row.note = note;
    for (var s = 0; s < STEPS; s++) {
        var v = arguments[2 + s];
        row.velocities[s] = typeof v === "number" ? Math.max(0, Math.min(127, v)) : 0;
    }
    redraw();
}

function lock(t, on) {
    if (t >= 0 && t < TRACKS) {
        grid.rows[t].locked = on ? 1 : 0;
        redraw();
    }
}

function step(s) {
    grid.step = s >= 0 && s < STEPS ? s : -1;
    redraw();
}

function pending(on) {
    grid.pending = on ? 1 : 0;
    redraw();
}

// -- drawing -------------------------------------------------------------------------------
function layout(width, height) {
    var cellWidth = (width - LABEL_WIDTH) / STEPS;
    var cellHeight = height / TRACKS;
    return { cellWidth: cellWidth, cellHeight: cellHeight, left: LABEL_WIDTH };
}

function cellColor(t, s) {
    var row = grid.rows[t];
    var v = row.velocities[s];
    if (v > 0) {
        var base = row.locked ? COLORS.locked : COLORS.hit;
        var level = 0.45 + 0.55 * v / 127;
        return [base[0] * level, base[1] * level, base[2] * level, 1.0];
    }
    return s % 4 === 0 ? COLORS.beat : COLORS.cell;
}

function paint() {
    if (typeof mgraphics === "undefined" || typeof box === "undefined") {
        return;
    }
    var width = box.rect[2] - box.rect[0];
    var height = box.rect[3] - box.rect[1];
    var g = layout(width, height);
    var m = mgraphics;
    m.set_source_rgba(COLORS.background);
    m.rectangle(0, 0, width, height);
    m.fill();
    m.select_font_face("Arial");
    m.set_font_size(9);
    for (var t = 0; t < TRACKS; t++) {
        var y = t * g.cellHeight;
        m.set_source_rgba(grid.rows[t].locked ? COLORS.locked : COLORS.text);
        m.move_to(2, y + g.cellHeight * 0.5 + 3);
        m.show_text(roleName(grid.rows[t].note) + (grid.rows[t].locked ? " *" : ""));
        for (var s = 0; s < STEPS; s++) {
            m.set_source_rgba(cellColor(t, s));
            m.rectangle(g.left + s * g.cellWidth + 1, y + 1, g.cellWidth - 2, g.cellHeight - 2);
            m.fill();
        }
    }
    if (grid.step >= 0) {
        m.set_source_rgba(COLORS.playhead);
        m.rectangle(g.left + grid.step * g.cellWidth, 0, g.cellWidth, height);
        m.fill();
    }
    if (grid.pending) {
        m.set_source_rgba(COLORS.pending);
        m.rectangle(width - 4, 0, 4, 4);
        m.fill();
    }
}

if (typeof mgraphics !== "undefined") {
    mgraphics.init();
    mgraphics.relative_coords = 0;
    mgraphics.autofill = 0;
}

var HELPERS = [emptyGrid, roleName, redraw, layout, cellColor];
for (var h = 0; h < HELPERS.length; h++) {
    HELPERS[h].local = 1;
}

if (typeof module !== "undefined" && module.exports) {
    module.exports = { roleName: roleName };
}
