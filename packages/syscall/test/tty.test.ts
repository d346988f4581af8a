/// <reference types="node" />
/**
 * Terminal behaviour with a console that is a TTY: termios round trips through
 * TCGETS/TCSETS, window size, process groups, and the line discipline's duties in
 * non-canonical mode (ISIG turns ^C into SIGINT for the foreground group, ICRNL, echo).
 */
import { afterAll, describe, expect, it } from "vitest";
import { runGuest } from "./harness.ts";
import { removeRoot, tempRoot } from "./root.ts";

const root = tempRoot();
afterAll(() => removeRoot(root));

describe("terminal", () => {
  it("isatty, stty and the window size", async () => {
    const r = await runGuest(
      root,
      [
        "/bin/busybox",
        "sh",
        "-c",
        "test -t 0 && echo tty; busybox stty size; busybox stty -icanon; busybox stty -a | busybox grep -o -- '-icanon'",
      ],
      {
        tty: true,
      },
    );
    expect(r.stdout).toBe("tty\n24 80\n-icanon\n");
    const p = await runGuest(root, [
      "/bin/busybox",
      "sh",
      "-c",
      "test -t 0 || echo not-a-tty; busybox stty size",
    ]);
    expect(p.stdout).toBe("not-a-tty\n");
    expect(p.stderr).toContain("stty:");
  });

  it("in non-canonical mode CR becomes NL, and ^C becomes SIGINT for the foreground group", async () => {
    const r = await runGuest(
      root,
      ["/bin/busybox", "sh", "-c", "busybox stty -icanon -echo; exec busybox cat"],
      {
        tty: true,
        stdin: "line\rmore\r",
      },
    );
    expect(r.stdout).toBe("line\nmore\n");
    const k = await runGuest(
      root,
      ["/bin/busybox", "sh", "-c", 'busybox stty -icanon -echo; busybox cat; echo "cat: $?"'],
      {
        tty: true,
        stdin: "\u0003ignored",
      },
    );
    // The non-interactive sh is in the same foreground group: it dies of SIGINT too, so
    // nothing after cat runs.
    expect(k.stdout).toBe("");
    expect(k.status).toBe(130);
  });

  it("with -isig, ^C is just a byte", async () => {
    const r = await runGuest(
      root,
      ["/bin/busybox", "sh", "-c", "busybox stty -icanon -echo -isig; busybox od -An -c"],
      {
        tty: true,
        stdin: "a\u0003b",
      },
    );
    expect(r.stdout.replace(/\s+/g, " ").trim()).toBe("a 003 b");
    expect(r.status).toBe(0);
  });
});
