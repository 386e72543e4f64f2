#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Boots the release kernel (`cargo xtask run --release`), waits for the shell, types each
command, waits for the prompt to come back and prints what the console showed.

  guest.py [--smp N] [--append KERNEL-ARGS] CMD [CMD ...]

Used by run.sh for Damselfly's side of a sitting; handy by itself for a quick measurement
(`guest.py /bin/bench/bench_ring`).
"""
import argparse, os, subprocess, sys, threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tcg-profile'))
import profile as tcg  # noqa: E402  (its Guest drives the console)


class Guest(tcg.Guest):
    """`cargo xtask run --release` without a plugin."""

    def __init__(self, smp, append):
        args = ['cargo', 'xtask', 'run', '--release', '--smp', str(smp)]
        if append:
            args += ['--append', append]
        self.proc = subprocess.Popen(args, cwd=tcg.ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.out = b''
        threading.Thread(target=self._read, daemon=True).start()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--smp', type=int, default=2)
    p.add_argument('--append', default=None)
    p.add_argument('--timeout', type=int, default=3600, help='seconds each command may take')
    p.add_argument('cmds', nargs='+')
    a = p.parse_args()
    guest = Guest(a.smp, a.append)
    try:
        at = guest.wait_for(b'rc done', 0, 300)
        at = guest.wait_for(b'$ ', at, 60)
        for cmd in a.cmds:
            start = len(guest.out)
            guest.type(cmd)
            at = guest.wait_for(b'\n$ ', at, a.timeout)
            sys.stdout.write(guest.out[start:at].decode(errors='replace'))
            sys.stdout.flush()
    finally:
        guest.close()


if __name__ == '__main__':
    main()
