#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Exact guest profiles under QEMU's TCG, by operation (see README.md).

  profile.py blocks  --ops N [--cmd CMD] [--smp S] [--disk FILE] [--top K]
  profile.py callers --ops N --watch REGEX [--cmd CMD] ...

Boots the release kernel through `cargo xtask run` with a TCG plugin loaded, waits for
the shell, zeroes the counts, types CMD, waits for the prompt to come back, dumps the
counts and prints them divided by N (the operations CMD performs), symbolized against
the kernel and CMD's program.
"""
import argparse, bisect, collections, os, re, signal, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target'))
USER_BIN = os.path.join(TARGET, 'x86_64-unknown-none', 'release')
KERNEL = os.path.join(ROOT, 'build', 'kernel')
USER_TOP = 1 << 47


def symbols(elf):
    out = subprocess.run(['nm', '-n', '--demangle', elf], capture_output=True, text=True).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(' ', 2)
        if len(parts) == 3 and parts[1] in 'tTwW':
            table.append((int(parts[0], 16), re.sub(r'::h[0-9a-f]{16}$', '', parts[2])))
    return table


class Symbolizer:
    def __init__(self, user_elf):
        self.kernel = symbols(KERNEL)
        self.user = symbols(user_elf) if user_elf and os.path.exists(user_elf) else []
        self.k_addr = [a for a, _ in self.kernel]
        self.u_addr = [a for a, _ in self.user]

    def name(self, vaddr):
        table, addrs, tag = ((self.kernel, self.k_addr, 'K') if vaddr >= USER_TOP
                             else (self.user, self.u_addr, 'U'))
        i = bisect.bisect_right(addrs, vaddr) - 1
        return '%s %s' % (tag, table[i][1] if i >= 0 else hex(vaddr))


class Guest:
    """`cargo xtask run` with the plugin, driven through its console."""

    def __init__(self, plugin, workdir, smp, disk, append):
        args = ['cargo', 'xtask', 'run', '--release', '--smp', str(smp)]
        args += ['--disk', disk] if disk else []
        args += ['--append', append] if append else []
        env = dict(os.environ, XTASK_QEMU_ARGS='-plugin %s,dir=%s' % (plugin, workdir))
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.out = b''
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            self.out += chunk

    def wait_for(self, needle, after, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            at = self.out.find(needle, after)
            if at >= 0:
                return at + len(needle)
            time.sleep(0.05)
        sys.exit('profile: no %r on the console within %d s; console:\n%s'
                 % (needle, timeout, self.out[-2000:].decode(errors='replace')))

    def type(self, text):
        self.proc.stdin.write(text.encode() + b'\r')
        self.proc.stdin.flush()

    def close(self):
        # QEMU is xtask's child: end the whole process group, not just cargo.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def control(workdir, cmd):
    out = os.path.join(workdir, 'out')
    if cmd == 'dump' and os.path.exists(out):
        os.unlink(out)
    with open(os.path.join(workdir, 'cmd'), 'w') as f:
        f.write(cmd + '\n')
    deadline = time.time() + 30
    while os.path.exists(os.path.join(workdir, 'cmd')) or (cmd == 'dump' and not os.path.exists(out)):
        if time.time() > deadline:
            sys.exit('profile: the plugin did not answer %r' % cmd)
        time.sleep(0.05)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('mode', choices=['blocks', 'callers'])
    p.add_argument('--cmd', default='/bin/bench/bench_disk /dev/vda disk_randread_4k_qd1')
    p.add_argument('--ops', type=float, required=True, help='operations CMD performs')
    p.add_argument('--before', help='a command typed (and waited for) before the counts are '
                   'zeroed, e.g. a first run, so that CMD is measured on a warm system')
    p.add_argument('--watch', help='callers: regex over kernel symbol names to watch')
    p.add_argument('--smp', type=int, default=2)
    p.add_argument('--disk', help='disk image (default: xtask\'s)')
    p.add_argument('--top', type=int, default=40)
    p.add_argument('--append', default='haltpoll=0',
                   help='kernel command line (default haltpoll=0: an idle CPU halts at once, '
                        'so its poll-before-halt spin does not count as work)')
    p.add_argument('--workdir', default='/tmp/tcg-profile')
    a = p.parse_args()
    if a.mode == 'callers' and not a.watch:
        p.error('callers needs --watch')
    os.makedirs(a.workdir, exist_ok=True)
    plugin = os.path.join(a.workdir, a.mode + '.so')
    subprocess.run(['gcc', '-O2', '-shared', '-fPIC', '-o', plugin,
                    os.path.join(HERE, a.mode + '.c'), '-lpthread'], check=True)
    if a.mode == 'callers':
        with open(os.path.join(a.workdir, 'watch'), 'w') as f:
            for addr, name in symbols(KERNEL):
                if re.search(a.watch, name):
                    f.write('%x\n' % addr)
    guest = Guest(plugin, a.workdir, a.smp, a.disk, a.append)
    try:
        at = guest.wait_for(b'rc done', 0, 300)
        at = guest.wait_for(b'$ ', at, 60)
        if a.before:
            guest.type(a.before)
            at = guest.wait_for(b'\n$ ', at, 1800)
        control(a.workdir, 'reset')
        guest.type(a.cmd)
        at = guest.wait_for(b'\n$ ', at, 1800)
        control(a.workdir, 'dump')
    finally:
        guest.close()
    sym = Symbolizer(os.path.join(USER_BIN, os.path.basename(a.cmd.split()[0])))
    rows = [line.split() for line in open(os.path.join(a.workdir, 'out'))]
    if a.mode == 'blocks':
        by = collections.Counter()
        for vaddr, insns, count in rows:
            by[sym.name(int(vaddr, 16))] += int(insns) * int(count)
        print('guest instructions per operation: %.0f' % (sum(by.values()) / a.ops))
        for name, n in by.most_common(a.top):
            print('%9.0f  %s' % (n / a.ops, name[:150]))
    else:
        by = collections.defaultdict(collections.Counter)
        for to, frm, count in rows:
            by[sym.name(int(to, 16))][sym.name(int(frm, 16))] += int(count)
        for target, callers in sorted(by.items(), key=lambda kv: -sum(kv[1].values())):
            print('%8.2f per op  %s' % (sum(callers.values()) / a.ops, target[:120]))
            for name, n in callers.most_common(a.top):
                if n / a.ops >= 0.01:
                    print('      %8.2f  %s' % (n / a.ops, name[:150]))


if __name__ == '__main__':
    main()
