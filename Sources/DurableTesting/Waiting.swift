import Synchronization

/// A value that arrives once, from any task, awaited with a time limit.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        /// Waiters given up (timed out or cancelled) before they were even registered.
        var abandoned: Set<Int> = []
        var nextKey = 0
    }

    private let state = Mutex(State())

    /// Sets the value and wakes every waiter; later calls are ignored.
    func fulfil(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value, or nil when `timeout` passes (or the calling task is cancelled) before it arrives.
    func value(within timeout: Duration) async -> Value? {
        let key = state.withLock { state -> Int in
            state.nextKey += 1
            return state.nextKey
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            abandon(key)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let ready = state.withLock { state -> Value?? in
                    if let value = state.value { return .some(value) }
                    if state.abandoned.remove(key) != nil { return .some(nil) }
                    state.waiters[key] = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            abandon(key)
        }
    }

    /// Gives up one waiter: it gets nil now, or at once when it registers later.
    private func abandon(_ key: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            if let waiter = state.waiters.removeValue(forKey: key) { return waiter }
            if state.value == nil { state.abandoned.insert(key) }
            return nil
        }
        waiter?.resume(returning: nil)
    }
}

/// How a wait with a time limit ended.
enum Finished<Value: Sendable>: Sendable {
    /// The operation returned this.
    case value(Value)
    /// The time ran out first.
    case timedOut
}

/// What `operation` returns or throws, or ``Finished/timedOut`` when it has not finished within `timeout`. On a
/// timeout `operation` is cancelled and left to end on its own: an `await` inside it that ignores cancellation
/// cannot hold the caller past the deadline.
/// - Throws: what `operation` throws, or `CancellationError` when the calling task is cancelled meanwhile.
func finishing<Value: Sendable>(
    within timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Finished<Value> {
    let outcome = OneShot<Result<Value, any Error>>()
    let work = Task {
        do {
            outcome.fulfil(.success(try await operation()))
        } catch {
            outcome.fulfil(.failure(error))
        }
    }
    guard let finished = await outcome.value(within: timeout) else {
        work.cancel()
        try Task.checkCancellation()
        return .timedOut
    }
    return .value(try finished.get())
}
