//! The thread pool of the threaded CPU module (built with the `threads` feature only).
//!
//! burn flex parallelises its kernels (gemm, convolution, elementwise, reductions) with rayon.
//! Here rayon's threads are Web Workers that instantiate this same module on its shared memory
//! (`js/threads.js` starts them; `js/thread-worker.js` is their script), so those kernels run on
//! `navigator.hardwareConcurrency` threads.
//!
//! The calling thread, often a page's main thread, may never block (`memory.atomic.wait` traps
//! there), so it runs no model code: every call of the module is a job of the pool ([`run`]).
//! The job posts its id to the calling thread when it is done, and the call's promise resolves
//! there with the job's result. The calling thread stays free while the model works, and it never
//! waits on a lock held by the pool (rayon's own locks spin there: `web_spin_lock`).
//!
//! Why not the `wasm-bindgen-rayon` crate: its pool is meant to be used by blocking (`install`,
//! parallel iterators) from a worker, while this package's API runs on a page's main thread too;
//! its worker script finds the module's glue by a bundler-only relative import unless built in a
//! no-bundler mode, where this package knows its own layout (`cpu-mt/`) and loads the same way in
//! plain pages, webpack 5 bundles and module workers; and the pool's size and state are ours to
//! report (`threadPoolInfo`) and its failures ours to turn into coded errors.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;

use super::error_with_code;

/// The pool (one per module instance, that is per page or worker that loads the module).
static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
/// rayon's threads, waiting for their workers: `threadMain(i)` runs the `i`-th.
static THREADS: Mutex<Vec<Option<rayon::ThreadBuilder>>> = Mutex::new(Vec::new());
/// How many pool threads have entered rayon's loop.
static STARTED: AtomicUsize = AtomicUsize::new(0);
static NEXT_JOB: AtomicU32 = AtomicU32::new(1);

thread_local! {
    /// On the calling thread: `wait(id, take)`, given by `js/threads.js`, returns a promise
    /// that resolves to `take()` once the job `id` has posted that it is done.
    static WAIT: RefCell<Option<Function>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
extern "C" {
    /// `postMessage` of the worker this pool thread runs in (to the thread that started it).
    #[wasm_bindgen(js_namespace = globalThis, js_name = postMessage)]
    fn post_to_owner(message: &JsValue);
}

/// What the pool's workers need to instantiate this module on its memory: `[module, memory]`.
#[wasm_bindgen(js_name = threadContext)]
pub fn thread_context() -> Array {
    Array::of2(&wasm_bindgen::module(), &wasm_bindgen::memory())
}

/// Builds the pool of `threads` threads once `threads` workers have instantiated the module
/// (each then calls `threadMain(i)`); `wait` is the job waiter described at [`WAIT`].
#[wasm_bindgen(js_name = buildThreadPool)]
pub fn build_thread_pool(threads: usize, wait: Function) -> Result<(), JsValue> {
    if POOL.get().is_some() {
        return Err(error_with_code("INTERNAL", "the thread pool is already built"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mobileclip-{i}"))
        .start_handler(|_| {
            STARTED.fetch_add(1, Ordering::SeqCst);
        })
        // Runs on this thread, before any worker looks at THREADS: no contention here.
        .spawn_handler(|thread| {
            THREADS.lock().expect("never poisoned (panics abort)").push(Some(thread));
            Ok(())
        })
        .build()
        .map_err(|e| error_with_code("INTERNAL", &format!("the thread pool could not be built: {e}")))?;
    WAIT.set(Some(wait));
    let _ = POOL.set(pool);
    Ok(())
}

/// Runs the `index`-th pool thread: called by its worker (`js/thread-worker.js`), it returns
/// only if the pool shuts down (never, in practice).
#[wasm_bindgen(js_name = threadMain)]
pub fn thread_main(index: usize) -> Result<(), JsValue> {
    let thread = THREADS.lock().expect("never poisoned").get_mut(index).and_then(Option::take);
    let thread = thread.ok_or_else(|| error_with_code("INTERNAL", &format!("no pool thread {index} to run")))?;
    thread.run();
    Ok(())
}

/// The pool: `{ threads, started }`, rayon's thread count and how many of them are running.
#[wasm_bindgen(js_name = threadPoolInfo)]
pub fn thread_pool_info() -> Array {
    let threads = POOL.get().map_or(0, rayon::ThreadPool::current_num_threads);
    Array::of2(&(threads as u32).into(), &(STARTED.load(Ordering::SeqCst) as u32).into())
}

/// Runs `job` on the pool and resolves to `done(its result)`, which runs on the calling thread
/// (JavaScript values exist only there). Rejects if the pool is not built or a pool thread died.
pub(super) fn run<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
    done: impl FnOnce(R) -> Result<JsValue, JsValue> + 'static,
) -> Result<Promise, JsValue> {
    let pool = POOL.get().ok_or_else(|| error_with_code("INTERNAL", "the thread pool is not started"))?;
    let wait = WAIT.with_borrow(Clone::clone).ok_or_else(|| {
        error_with_code(
            "INTERNAL",
            "this thread did not start the thread pool: use the module from the thread that loaded it",
        )
    })?;
    let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    let slot = Arc::new(Mutex::new(None));
    let take = {
        let slot = slot.clone();
        // The job has stored its result and released the lock before posting its id.
        Closure::once_into_js(move || -> Result<JsValue, JsValue> {
            let result = slot.lock().expect("never poisoned").take();
            done(result.ok_or_else(|| error_with_code("INTERNAL", "a pool job ended without a result"))?)
        })
    };
    let promise = wait.call2(&JsValue::UNDEFINED, &id.into(), &take)?;
    pool.spawn(move || {
        let result = job();
        *slot.lock().expect("never poisoned") = Some(result);
        post_to_owner(&id.into());
    });
    Ok(promise.unchecked_into())
}

/// A value that is dropped on a pool thread, whichever thread lets go of it (a model's tensors
/// are freed there, not on the calling thread, which must not wait for the allocator's users).
pub(super) struct DropInPool<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> From<T> for DropInPool<T> {
    fn from(value: T) -> Self {
        Self(Some(value))
    }
}

impl<T: Send + 'static> std::ops::Deref for DropInPool<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> std::ops::DerefMut for DropInPool<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for DropInPool<T> {
    fn drop(&mut self) {
        if let (Some(value), Some(pool)) = (self.0.take(), POOL.get()) {
            pool.spawn(move || drop(value));
        }
    }
}
