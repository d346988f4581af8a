/**
 * UTF-8 for paths, arguments and names, without the web platform's TextEncoder/
 * TextDecoder (the core compiles against the ECMAScript library only). Behaviour follows
 * the WHATWG Encoding Standard: lone surrogates encode as U+FFFD, and each maximal invalid
 * subsequence decodes to one U+FFFD.
 */

export function utf8Encode(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 3);
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[o++] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[o++] = 0xf0 | (c >> 18);
        out[o++] = 0x80 | ((c >> 12) & 0x3f);
        out[o++] = 0x80 | ((c >> 6) & 0x3f);
        out[o++] = 0x80 | (c & 0x3f);
        continue;
      }
      c = 0xfffd;
    }
    if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
    } else {
      out[o++] = 0xe0 | (c >> 12);
      out[o++] = 0x80 | ((c >> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
    }
  }
  return out.slice(0, o);
}

export function utf8Decode(b: Uint8Array): string {
  const parts: string[] = [];
  let codes: number[] = [];
  const flush = () => {
    parts.push(String.fromCharCode(...codes));
    codes = [];
  };
  const n = b.length;
  let i = 0;
  while (i < n) {
    const b0 = b[i]!;
    if (b0 < 0x80) {
      codes.push(b0);
      i++;
    } else {
      let need = 0;
      let lower = 0x80;
      let upper = 0xbf;
      let cp = 0;
      if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 1;
        cp = b0 & 0x1f;
      } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 2;
        cp = b0 & 0x0f;
        if (b0 === 0xe0) lower = 0xa0;
        if (b0 === 0xed) upper = 0x9f;
      } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 3;
        cp = b0 & 0x07;
        if (b0 === 0xf0) lower = 0x90;
        if (b0 === 0xf4) upper = 0x8f;
      }
      i++;
      if (need === 0) {
        codes.push(0xfffd);
      } else {
        let ok = true;
        for (let k = 0; k < need; k++) {
          const c = i < n ? b[i]! : -1;
          if (c < lower || c > upper) {
            ok = false;
            break;
          }
          lower = 0x80;
          upper = 0xbf;
          cp = (cp << 6) | (c & 0x3f);
          i++;
        }
        if (!ok) codes.push(0xfffd);
        else if (cp < 0x10000) codes.push(cp);
        else {
          cp -= 0x10000;
          codes.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        }
      }
    }
    if (codes.length >= 8192) flush();
  }
  flush();
  return parts.join("");
}
