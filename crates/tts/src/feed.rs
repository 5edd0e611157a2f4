//! Chunks handed from planning to synthesis as they are planned, so synthesis of the first
//! sentence starts while the rest of a long text is still being phonemized.

use std::sync::{Condvar, Mutex, MutexGuard};

/// One unit of inference.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan {
    pub phonemes: String,
    pub tokens: Vec<i64>,
    /// Silence between this chunk and the next (none after the last).
    pub pause_after_ms: u32,
}

#[derive(Default)]
pub struct ChunkFeed {
    state: Mutex<FeedState>,
    changed: Condvar,
}

#[derive(Default)]
struct FeedState {
    chunks: Vec<ChunkPlan>,
    /// No more chunks will come: planning finished, failed, or the job stopped.
    closed: bool,
    /// The first chunk's audio exists (planning the rest waits for it: on a small machine the
    /// planner would otherwise slow down the first audio).
    first_done: bool,
}

impl ChunkFeed {
    pub fn new(chunks: Vec<ChunkPlan>, closed: bool) -> Self {
        Self {
            state: Mutex::new(FeedState {
                chunks,
                closed,
                first_done: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Appends planned chunks; false once the feed is closed (the job stopped: stop planning).
    pub fn push(&self, more: Vec<ChunkPlan>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.chunks.extend(more);
        self.changed.notify_all();
        true
    }

    pub fn mark_first_done(&self) {
        self.lock().first_done = true;
        self.changed.notify_all();
    }

    /// Waits until the first chunk has been synthesized or the feed closed.
    pub fn wait_first_done(&self) {
        let mut state = self.lock();
        while !state.first_done && !state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Waits until chunk `index` is planned (`Some`) or the feed closed without it (`None`).
    pub fn wait_for(&self, index: usize) -> Option<ChunkPlan> {
        let mut state = self.lock();
        loop {
            if let Some(chunk) = state.chunks.get(index) {
                return Some(chunk.clone());
            }
            if state.closed {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// The number of chunks once planning is over; `None` while more may come.
    pub fn final_total(&self) -> Option<usize> {
        let state = self.lock();
        state.closed.then_some(state.chunks.len())
    }

    pub fn planned(&self) -> usize {
        self.lock().chunks.len()
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // A panicking synthesis thread must not wedge the others: the state stays consistent
        // because every critical section is a single push or read.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
