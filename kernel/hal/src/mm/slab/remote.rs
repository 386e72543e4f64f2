//! Remote-free list: a lock-free LIFO that any CPU pushes freed objects onto
//! and only the owner CPU empties (DragonFly's `z_RChunks`).
//!
//! Many producers push with a compare-and-swap on the head; the one consumer
//! takes the whole list with a swap. Because the consumer never pops a single
//! node, a pushed node is never removed while a producer looks at it, so the
//! list has no ABA problem. The link lives in the freed object's first word
//! (every class is at least 16 B and 16-aligned).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

/// Head of a remote-free list.
///
/// Invariant: every node reachable from `head` is an object that its freeing
/// CPU gave up, with the next link in its first word.
pub(super) struct RemoteList {
    head: AtomicPtr<u8>,
}

impl RemoteList {
    pub(super) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether anything is waiting. A plain load: cheap on the local path.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Pushes `obj`; from any CPU.
    ///
    /// # Safety
    /// `obj` is valid for writes of one pointer, pointer-aligned, and the
    /// caller gives it up: nothing but this list's consumer touches it after
    /// the call.
    #[inline]
    pub(super) unsafe fn push(&self, obj: NonNull<u8>) {
        let link = obj.cast::<*mut u8>();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `obj` is valid for a pointer write and aligned, and still
            // ours until the exchange below succeeds (caller contract).
            unsafe { link.write(head) };
            // Release: the link write above (and the caller's last use of the
            // object) happens-before the consumer's acquire in `take_all`.
            match self.head.compare_exchange_weak(
                head,
                obj.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes the whole list (possibly null); for the consumer. Walk it with
    /// [`next_of`].
    #[inline]
    pub(super) fn take_all(&self) -> *mut u8 {
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

/// The node after `node` in a list returned by [`RemoteList::take_all`].
///
/// # Safety
/// `node` is a non-null node of a list this caller took with `take_all` and
/// has not yet reused.
#[inline]
pub(super) unsafe fn next_of(node: *mut u8) -> *mut u8 {
    // SAFETY: `node` is a pushed object whose first word holds the link,
    // written before the release exchange that `take_all` acquired (caller
    // contract), and now owned by the consumer alone.
    unsafe { node.cast::<*mut u8>().read() }
}
