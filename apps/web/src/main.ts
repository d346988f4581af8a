/**
 * The page: controls, the xterm.js terminal, the panels. The machine runs in a Web Worker
 * (worker.ts), one per VM; this thread only draws.
 */
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import { Terminal } from "@xterm/xterm";
import kernelUrl from "../../../guests/riscv64/Image.gz?url";
// The bundled guest, emitted beside the site as hashed assets.
import initrdUrl from "../../../guests/riscv64/initramfs.cpio.gz?url";
import { Panels } from "./panels.ts";
import type { FromWorker, JitMode, ToWorker, VirtMode } from "./protocol.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const virtSel = $<HTMLSelectElement>("virt");
const jitSel = $<HTMLSelectElement>("jit");
const memSel = $<HTMLSelectElement>("memory");
const bootBtn = $<HTMLButtonElement>("boot");
const saveBtn = $<HTMLButtonElement>("save");
const restoreInput = $<HTMLInputElement>("restore");
const status = $("status");
const bootTime = $("boot-time");

// The DOM renderer (xterm.js's default) draws the screen as rows of text, hidden from
// assistive technology; screen-reader mode adds the same rows as a list it reads (and
// tests read), with new output announced through a live region.
const term = new Terminal({ cols: 90, rows: 36, scrollback: 2000, fontSize: 12, screenReaderMode: true });
term.open($("terminal"));
const panels = new Panels($("panels"));

let worker: Worker | undefined;
/** When Boot (or Restore) was pressed, and when the machine's first instruction ran. */
let clickedAt = 0;
let runningAt = 0;
/** The console text since the VM began, kept short: enough to spot the shell prompt. */
let tail = "";
let promptSeen = false;
const decoder = new TextDecoder();

function setStatus(text: string, kind: "info" | "error" = "info"): void {
  status.textContent = text;
  status.className = kind;
}

function send(msg: ToWorker, transfer: Transferable[] = []): void {
  worker?.postMessage(msg, transfer);
}

/** Throw the current VM away and start a worker for the next. */
function newWorker(): Worker {
  worker?.terminate();
  const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  w.onmessage = (e: MessageEvent<FromWorker>) => onMessage(e.data);
  w.onerror = (e) => {
    setStatus(`the machine's worker failed: ${e.message}`, "error");
    saveBtn.disabled = true;
  };
  worker = w;
  term.reset();
  panels.reset();
  tail = "";
  promptSeen = false;
  bootTime.textContent = "";
  delete bootTime.dataset.ms;
  delete bootTime.dataset.guestMs;
  clickedAt = performance.now();
  saveBtn.disabled = true;
  return w;
}

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case "status":
      setStatus(m.text);
      return;
    case "running":
      runningAt = performance.now();
      saveBtn.disabled = false;
      setStatus(
        m.restored
          ? `running the restored VM (--virt ${m.virt}); press Enter for a prompt`
          : `booting Linux (--virt ${m.virt})`,
      );
      return;
    case "output": {
      // Acknowledged once drawn: the worker holds the guest while too much is unacknowledged.
      const n = m.bytes.length;
      const from = worker;
      term.write(m.bytes, () => {
        if (worker === from) send({ type: "ack", bytes: n });
      });
      if (!promptSeen) {
        tail = (tail + decoder.decode(m.bytes, { stream: true })).slice(-4096);
        // init.sh prints "visor guest: Linux ... up", then busybox sh its prompt "~ # ".
        if (/visor guest: [^\n]* up[\s\S]*# $/.test(tail)) {
          promptSeen = true;
          const total = performance.now() - clickedAt;
          const guest = performance.now() - runningAt;
          bootTime.dataset.ms = total.toFixed(0);
          bootTime.dataset.guestMs = guest.toFixed(0);
          bootTime.textContent = `Shell prompt ${(total / 1000).toFixed(1)} s after Boot (fetching, warm-up and ${(guest / 1000).toFixed(1)} s of Linux boot).`;
          setStatus(
            "at the shell prompt: click the terminal and type (try: uname -a, cat /proc/cpuinfo, ls /sys/bus)",
          );
          term.focus();
        }
      }
      return;
    }
    case "stats":
      panels.update(m.stats);
      return;
    case "snapshot": {
      const blob = new Blob([m.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `visor-${new Date().toISOString().replace(/[:.]/g, "-")}.snap`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      setStatus(`snapshot saved (${(m.bytes.length / 2 ** 20).toFixed(1)} MiB); the VM runs on`);
      return;
    }
    case "exit":
      saveBtn.disabled = true;
      setStatus(`the guest stopped: ${m.how}. Press Boot for a new VM.`);
      return;
    case "error":
      setStatus(m.message, "error");
      return;
  }
}

bootBtn.addEventListener("click", () => {
  newWorker();
  send({
    type: "boot",
    kernelUrl: new URL(kernelUrl, location.href).href,
    initrdUrl: new URL(initrdUrl, location.href).href,
    virt: virtSel.value as VirtMode,
    jit: jitSel.value as JitMode,
    memoryMiB: Number(memSel.value),
  });
});

saveBtn.addEventListener("click", () => send({ type: "snapshot" }));

restoreInput.addEventListener("change", async () => {
  const file = restoreInput.files?.[0];
  restoreInput.value = "";
  if (file === undefined) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  newWorker();
  setStatus(`restoring ${file.name} (${(bytes.length / 2 ** 20).toFixed(1)} MiB)`);
  send({ type: "restore", snapshot: bytes, jit: jitSel.value as JitMode }, [bytes.buffer]);
});

const encoder = new TextEncoder();
term.onData((s) => send({ type: "input", bytes: encoder.encode(s) }));
