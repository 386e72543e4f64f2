//! Executor-private per-task data stored in the task block (`raw::task::Header::local`).

use crate::token::TokenSet;

/// What the executor keeps per task besides the future: its token set.
#[derive(Debug, Default)]
pub(crate) struct TaskLocal {
    pub tokens: TokenSet,
}
