import Dispatch
import Foundation
import Synchronization

/// A serial executor backed by one dedicated OS thread.
///
/// libpq is blocking: a query holds its thread until the server answers. Swift's cooperative pool has as many
/// threads as cores (two on a small server), so one blocked query there could stall the whole process. Every
/// ``PGConnection`` therefore runs on its own thread through this executor, and async callers simply await it.
final class ThreadExecutor: SerialExecutor {
    private struct State {
        var jobs: [UnownedJob] = []
        var head = 0
        var stopping = false
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Starts the thread. It lives until ``stop()`` is called and the queued jobs have run.
    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        // A small stack is enough: the thread only runs libpq calls and short decoding work.
        thread.stackSize = 512 * 1024
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        state.withLock { $0.jobs.append(job) }
        wakeUp.signal()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread exit once the jobs already queued have run.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeUp.signal()
    }

    private func loop() {
        while true {
            wakeUp.wait()
            let next: UnownedJob? = state.withLock { state in
                guard state.head < state.jobs.count else { return nil }
                let job = state.jobs[state.head]
                state.head += 1
                // Compact now and then so the array does not grow without bound.
                if state.head > 64, state.head * 2 > state.jobs.count {
                    state.jobs.removeFirst(state.head)
                    state.head = 0
                }
                return job
            }
            if let next {
                next.runSynchronously(on: asUnownedSerialExecutor())
                continue
            }
            if state.withLock({ $0.stopping && $0.head >= $0.jobs.count }) { return }
        }
    }
}
