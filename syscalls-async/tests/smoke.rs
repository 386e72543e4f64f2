// SPDX-License-Identifier: MIT OR Apache-2.0
mod common;
use common::*;

#[test]
fn nop_on_both_doors() {
    let mut w = World::new();
    assert_eq!(w.trap(nop(1)), 0);
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(nop(7));
    assert_eq!(w.enter(1, 1, abi::RingEnterFlags::GETEVENTS.bits(), 0), 1);
    let c = ring.reap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].user_data, c[0].res), (7, 0));
}
