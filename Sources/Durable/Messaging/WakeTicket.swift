import Synchronization

/// A one-shot wake-up for a task that waits for a notification or a timeout, whichever comes first.
final class WakeTicket: Sendable {
    private struct State {
        var fired = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    let key: String
    private let state = Mutex(State())

    init(key: String) {
        self.key = key
    }

    /// Wakes the waiter, or makes the next wait return at once.
    func fire() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns when fired, when `timeout` passes, or when the task is cancelled.
    func wait(timeout: Duration) async {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.fire()
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.fired { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            fire()
        }
    }
}
