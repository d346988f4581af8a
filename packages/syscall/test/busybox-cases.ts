/**
 * The differential busybox suite: each case runs `/bin/sh -c SCRIPT` in a fresh root made
 * by root.ts, with the environment below and optional stdin. The expected stdout, stderr
 * and exit status were recorded with qemu-riscv64 (fixtures/gen-busybox-expected.ts).
 *
 * Scripts avoid what legitimately differs between two runs or two machines: process ids,
 * the current time, file owners, directory order (find output is sorted), disk block
 * counts.
 */
export interface DiffCase {
  name: string;
  script: string;
  stdin?: string;
}

export const DIFF_ENV = ["PATH=/bin", "HOME=/home"];

export const CASES: DiffCase[] = [
  {
    name: "echo-printf",
    script: `echo hello world; echo -n no-newline; echo; printf '%s|%5d|%-4s|%x|%o\\n' str 42 ab 255 8; printf '%c%c\\n' A B`,
  },
  {
    name: "pipes",
    script:
      "cat /data/words.txt | sort | uniq -c | sort -rn | head -5; cat /data/text.txt | tr a-z A-Z | grep -c O",
  },
  {
    name: "loops",
    script: `i=0; s=0; while [ $i -lt 200 ]; do s=$((s + i * i)); i=$((i + 1)); done; echo "sum=$s"
for w in alpha beta gamma; do echo "word $w"; done
n=5; until [ $n -eq 0 ]; do printf '%d ' $n; n=$((n - 1)); done; echo
case abc in a*) echo matched;; *) echo no;; esac`,
  },
  {
    name: "subshells",
    script: `(cd /data/tree && pwd; exit 7); echo "status $?"; pwd
x=$(echo inner; echo two); echo "[$x]"
{ echo grouped; echo lines; } | tr a-z A-Z
y=$( (echo nested) ); echo "$y"
f() { echo "in f: $1"; return 3; }; f arg; echo "f returned $?"`,
  },
  {
    name: "ls",
    script:
      "ls /data; ls -a /data/tree; ls -R /data/tree; ls -1 /bin | wc -l; ls -d /data/tree/*; ls -F /data/tree",
  },
  {
    name: "cat",
    script:
      "cat /data/text.txt; cat -n /data/text.txt | tail -3; cat /data/tree/a/one.txt /data/tree/a/b/two.txt",
  },
  {
    name: "sort",
    script:
      "sort /data/words.txt | head -5; sort -n /data/nums.txt | head -3; sort -rn /data/nums.txt | head -3; sort -u /data/words.txt | wc -l; sort -t a -k2 /data/words.txt | tail -2",
  },
  {
    name: "uniq-wc",
    script:
      "wc /data/words.txt /data/text.txt; wc -l < /data/nums.txt; sort /data/words.txt | uniq -d | wc -l; sort /data/words.txt | uniq -u | head -3; wc -c /data/blob.bin",
  },
  {
    name: "grep",
    script: `grep -c ka /data/words.txt; grep -n '^zu' /data/words.txt | head -4; grep -v e /data/text.txt; grep -E 'qi|xe' -o /data/words.txt | sort | uniq -c; grep -i QUICK /data/text.txt; grep -l two -r /data/tree | sort; grep nothing /data/text.txt; echo "grep status $?"`,
  },
  {
    name: "sed",
    script: `sed -n '2,4p' /data/text.txt; sed 's/[aeiou]/_/g' /data/text.txt | head -3; sed -e '/^$/d' -e 's/^/> /' /data/text.txt; sed '1!G;h;$!d' /data/tree/a/b/two.txt; echo abc | sed 's/\\(a\\)\\(b\\)/\\2\\1/'`,
  },
  {
    name: "awk",
    script: `awk '{ n += length($0) } END { print NR, n }' /data/words.txt; awk -F' ' 'NF > 5 { print NF": "$1 }' /data/text.txt; awk '{ c[$0]++ } END { for (w in c) if (c[w] > 3) k++; print k }' /data/words.txt; awk 'BEGIN { for (i = 1; i <= 5; i++) printf "%d %s\\n", i, i * i * 3.5 }'`,
  },
  {
    name: "awk-float",
    script: `awk 'BEGIN { print 1/3, sqrt(2), 2^40, int(-3.7), 10 % 3, exp(1), log(10), sin(1), cos(0.5), atan2(1, 2); printf "%.10f %e %g %G\\n", 3.14159265358979, 12345.678, 0.0001, 1e-10; x = 0.1 + 0.2; print (x == 0.3), x - 0.3 }'`,
  },
  {
    name: "find",
    script:
      "find /data | sort; find /data -type f -name '*.txt' | sort; find /data/tree -type d | sort; find /data/tree -type l; find /data -size +100k",
  },
  {
    name: "checksums",
    script:
      "sha256sum /data/blob.bin /data/words.txt; md5sum /data/text.txt; cat /data/blob.bin | sha1sum; sha256sum < /data/nums.txt",
  },
  {
    name: "gzip",
    script: `gzip -c /data/words.txt > /tmp/w.gz; gunzip -c /tmp/w.gz | sha256sum; wc -c < /tmp/w.gz; gzip -9 -c /data/blob.bin | gunzip | cmp - /data/blob.bin && echo blob-same; cp /data/text.txt /tmp/t.txt; gzip /tmp/t.txt; ls /tmp; zcat /tmp/t.txt.gz | head -2; gunzip /tmp/t.txt.gz; cmp /tmp/t.txt /data/text.txt && echo text-same`,
  },
  {
    name: "tar",
    script: `cd /data && tar cf /tmp/a.tar tree && tar tf /tmp/a.tar | sort; mkdir /tmp/x && cd /tmp/x && tar xf /tmp/a.tar && find . | sort && cat tree/a/one.txt && readlink tree/link-to-one; tar czf /tmp/b.tgz -C /data tree/a; tar tzf /tmp/b.tgz | sort`,
  },
  {
    name: "date",
    script: `date -u -d @0; date -u -d @1234567890 '+%Y-%m-%d %H:%M:%S %A %j'; date -u -d '2024-02-29 12:34:56' +%s; date -u -d @86399 +%T`,
  },
  {
    name: "file-ops",
    script: `mkdir -p /tmp/d/e/f; touch /tmp/d/file; ln -s file /tmp/d/sym; ln /tmp/d/file /tmp/d/hard; mv /tmp/d/file /tmp/d/moved; ls /tmp/d; readlink /tmp/d/sym; cat /tmp/d/sym 2>&1; rm -r /tmp/d/e; ls /tmp/d; cp /data/text.txt /tmp/c; cmp /tmp/c /data/text.txt && echo copied; rmdir /tmp/d 2>&1; echo "rmdir $?"; chmod 600 /tmp/c; stat -c '%a %s %F' /tmp/c; stat -c '%a %F' /data/tree; echo data > /tmp/n; echo more >> /tmp/n; cat /tmp/n`,
  },
  {
    name: "xargs-seq",
    script:
      "seq 1 10 | xargs echo; seq 5 -1 1 | tr '\\n' ' '; echo; seq -s, 1 5; seq 1 20 | xargs -n 6 echo; echo a b c | xargs -n1 echo item",
  },
  {
    name: "signals",
    script: `trap 'echo got USR1' USR1; kill -USR1 $$; echo after; sh -c 'kill -TERM $$'; echo "killed: $?"; sh -c 'kill -9 $$'; echo "sigkill: $?"; (trap 'echo exit trap' EXIT; true); trap - USR1; echo done`,
  },
  {
    name: "exit-status",
    script: `false; echo $?; sh -c 'exit 42'; echo $?; ! true; echo $?; nosuchcommand 2>&1; echo $?; sh -c 'exit 300'; echo $?; test 3 -gt 2 && echo yes; [ -d /data ] && [ ! -e /nope ] && echo tests`,
  },
  {
    name: "read-heredoc",
    script: `while read a b; do echo "$b $a"; done <<EOF
one two
three four
EOF
read first < /data/text.txt; echo "first: $first"; IFS=: read u x rest < /etc/passwd; echo "$u $rest"`,
  },
  {
    name: "stdin",
    script: "cat; echo '--'; echo again | cat - /data/tree/a/one.txt",
    stdin: "line one from stdin\nline two\n",
  },
  {
    name: "stdin-filters",
    script: "tr a-z A-Z | sort -r | head -2",
    stdin: "delta\nalpha\ncharlie\nbravo\n",
  },
  {
    name: "sigpipe",
    script: `yes | head -3; seq 1 100000 | head -2; yes abc | sed 5q; (yes; echo "yes ended") | head -1`,
  },
  {
    name: "od",
    script: `printf 'abc\\001\\377\\n' | od -An -tx1; head -c 32 /data/blob.bin | od -An -tx1; printf 'hello' | od -c`,
  },
  {
    name: "cut-tr-head-tail",
    script: `cut -d' ' -f1,3 /data/text.txt; tr -s ' ' < /data/text.txt | tail -2; tail -n 3 /data/words.txt; head -c 20 /data/text.txt; echo; tail -c 10 /data/text.txt; cut -c1-5 /data/words.txt | head -3`,
  },
  {
    name: "background-wait",
    script: `(sleep 0.05; echo bg done) & echo fg; wait; echo waited; sleep 0.01 & pid=$!; wait $pid; echo "bg status $?"`,
  },
  {
    name: "devices-dd",
    script: `echo hidden > /dev/null; echo visible; head -c 8 /dev/zero | od -An -tx1; dd if=/data/blob.bin bs=4096 count=3 2>/dev/null | wc -c; dd if=/data/blob.bin bs=1000 skip=2 count=1 2>/dev/null | sha256sum`,
  },
  {
    name: "diff-cmp",
    script: `sed 's/fox/cat/' /data/text.txt > /tmp/t2; diff /data/text.txt /tmp/t2; echo "diff $?"; cmp /data/text.txt /tmp/t2; echo "cmp $?"`,
  },
  {
    name: "env-expr",
    script: `env | sort; expr 6 \\* 7; expr length abcdef; X=1 sh -c 'echo X=$X'; export Y=2; sh -c 'echo Y=$Y'; uname -m; uname -s`,
  },
  {
    name: "tee-redirect",
    script: `echo to-both | tee /tmp/tee.out; cat /tmp/tee.out; ls /nonexistent 2>&1 >/dev/null | sed 's/^/err: /'; exec 3>/tmp/fd3; echo via-fd3 >&3; exec 3>&-; cat /tmp/fd3`,
  },
];
