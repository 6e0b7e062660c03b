import Synchronization

/// One long-running background task that can be started once and stopped (cancelled and awaited). The
/// listener, the queue dispatcher and the executor monitor each run their loop in one.
final class BackgroundLoop: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Starts `body` unless the loop already runs.
    func start(_ body: @escaping @Sendable () async -> Void) {
        task.withLock { task in
            guard task == nil else { return }
            task = Task { await body() }
        }
    }

    /// Cancels the loop and waits for it to end. Safe to call when it never started.
    func stop() async {
        let running = task.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
    }
}
