/// <reference types="node" />
/**
 * Deterministic guest root directories for the differential busybox suite: the same
 * tree is built for the committed qemu-riscv64 reference run (fixtures/gen-busybox-expected.ts)
 * and for every test run under visor.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.join(here, "..", "fixtures");
export const BUSYBOX = path.join(FIXTURES, "busybox", "busybox");

/** Applets linked into /bin (busybox picks the applet from argv[0]). */
export const APPLETS = (
  "sh ash awk basename cat chmod cmp cp cut date dd diff dirname echo env expr false find " +
  "grep gunzip gzip head id kill ln ls md5sum mkdir mv od printf pwd readlink rm rmdir " +
  "sed seq sh sha1sum sha256sum sleep sort stat tail tar tee test touch tr true uname uniq " +
  "wc xargs yes zcat"
).split(" ");

/** The fixed timestamp of every input file: 2001-09-09T01:46:40Z. */
export const FIXED_TIME = 1000000000;

/** xorshift32: a tiny deterministic generator for the inputs. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "zu",
  "re",
  "ta",
  "no",
  "qi",
  "xe",
  "bo",
  "su",
  "da",
  "fi",
  "gu",
  "he",
  "ja",
];

function words(n: number, seed: number): string {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + (r() % 3);
    let w = "";
    for (let j = 0; j < len; j++) w += SYLLABLES[r() % SYLLABLES.length];
    out.push(w);
  }
  return `${out.join("\n")}\n`;
}

const TEXT = `The quick brown fox jumps over the lazy dog.
Pack my box with five dozen liquor jugs.

How vexingly quick daft zebras jump!
Sphinx of black quartz, judge my vow.
  Indented line with    several   spaces.
last line without vowels: rhythm myths
`;

function setTimes(p: string): void {
  fs.lutimesSync(p, FIXED_TIME, FIXED_TIME);
}

/**
 * Build a guest root in `dir` (created if needed): /bin with busybox and its applet
 * links, /data with deterministic inputs, empty /tmp, /dev, /etc, /home.
 */
export function makeRoot(dir: string): void {
  for (const d of [
    "bin",
    "tmp",
    "dev",
    "etc",
    "home",
    "data",
    "data/tree",
    "data/tree/a",
    "data/tree/a/b",
    "data/tree/c",
  ]) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox"));
  fs.chmodSync(path.join(dir, "bin", "busybox"), 0o755);
  for (const a of APPLETS) {
    const p = path.join(dir, "bin", a);
    if (!fs.existsSync(p)) fs.symlinkSync("busybox", p);
  }
  const put = (rel: string, data: string | Uint8Array) => fs.writeFileSync(path.join(dir, rel), data);
  put("data/words.txt", words(2000, 1));
  put("data/text.txt", TEXT);
  const r = rng(7);
  put("data/nums.txt", `${Array.from({ length: 500 }, () => String((r() % 20000) - 10000)).join("\n")}\n`);
  const blob = new Uint8Array(256 * 1024);
  const rb = rng(42);
  for (let i = 0; i < blob.length; i += 4) {
    const v = rb();
    blob[i] = v;
    blob[i + 1] = v >>> 8;
    blob[i + 2] = v >>> 16;
    blob[i + 3] = v >>> 24;
  }
  put("data/blob.bin", blob);
  put("data/tree/a/one.txt", "one\n");
  put("data/tree/a/b/two.txt", "two\ntwo\n");
  put("data/tree/a/b/three.dat", "3\n");
  put("data/tree/c/four.txt", words(40, 9));
  put("data/tree/top.txt", "top of the tree\n");
  fs.symlinkSync("a/one.txt", path.join(dir, "data/tree/link-to-one"));
  put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  put("etc/group", "root:x:0:\n");
  // Fixed times on everything under /data and /etc (deepest first, so directories keep theirs).
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    setTimes(p);
  };
  walk(path.join(dir, "data"));
  walk(path.join(dir, "etc"));
}

/** A fresh temporary root. */
export function tempRoot(prefix = "visor-root-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  makeRoot(dir);
  return dir;
}

export function removeRoot(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
