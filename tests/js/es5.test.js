// Max's [js]/[jsui] run ES5 (SpiderMonkey 1.8.5 in Max 8, the "legacy engine" in Max 9):
// the device's files must not use later syntax or library calls.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { MAX_FOR_LIVE } = require("./harness");

const FORBIDDEN = [
  [/\blet\s/, "let"], [/\bconst\s/, "const"], [/=>/, "arrow function"], [/`/, "template string"],
  [/\bclass\s/, "class"], [/\.\.\.\w/, "spread"], [/\bimport\s/, "import"],
  [/\.includes\(/, "Array/String.includes"], [/Object\.assign/, "Object.assign"],
  [/Number\.isInteger/, "Number.isInteger"], [/\.startsWith\(|\.endsWith\(/, "startsWith"],
  [/Array\(\w*\)\.fill\(/, "Array.fill"], [/Array\.from/, "Array.from"], [/\bMap\b|\bSet\b/, "Map/Set"],
  [/\.find\(|\.findIndex\(/, "Array.find"], [/\basync\b|\bawait\b/, "async"],
];

function stripCommentsAndStrings(source) {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "")
    .replace(/"(?:\\.|[^"\\])*"/g, '""')
    .replace(/'(?:\\.|[^'\\])*'/g, "''");
}

for (const file of fs.readdirSync(MAX_FOR_LIVE).filter((f) => f.endsWith(".js"))) {
  test(`${file} is ES5`, () => {
    const source = fs.readFileSync(path.join(MAX_FOR_LIVE, file), "utf8");
    assert.ok(/^[\x00-\x7f]*$/.test(source), "ASCII only (Max's editors and symbols)");
    const code = stripCommentsAndStrings(source);
    for (const [pattern, what] of FORBIDDEN) {
      assert.ok(!pattern.test(code), `${file} uses ${what}`);
    }
  });
}
