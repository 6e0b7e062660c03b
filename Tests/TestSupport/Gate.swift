import Synchronization

/// A one-shot signal: ``wait()`` suspends until ``open()`` is called (or returns at once if it already was).
public final class Gate: Sendable {
    private struct State {
        var opened = false
        /// Suspended waiters by ticket, so a cancelled one can be found and resumed alone.
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var nextTicket = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether ``open()`` has been called.
    public var isOpen: Bool { state.withLock { $0.opened } }

    /// Opens the gate for good: every waiter goes on, and every later ``wait()`` returns at once.
    public func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.opened = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Waits until the gate is open, whether or not the task is cancelled meanwhile (for test code that must
    /// not go on before the signal).
    public func wait() async {
        // No cancellation handler: only open() resumes this waiter, and it never throws.
        try? await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if register(continuation, ticket: newTicket(), cancellable: false) { continuation.resume() }
        }
    }

    /// Waits until the gate is open; throws `CancellationError` as soon as the task is cancelled, so a workflow
    /// held here ends when its runtime shuts down (it then stays PENDING, as after a crash).
    public func waitUnlessCancelled() async throws {
        let ticket = newTicket()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if register(continuation, ticket: ticket, cancellable: true) { continuation.resume() }
            }
        } onCancel: {
            // Runs before the registration (which then sees the cancellation) or after it (the waiter is found
            // here): both take the lock, so neither misses the other.
            let waiter = state.withLock { $0.waiters.removeValue(forKey: ticket) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func newTicket() -> Int {
        state.withLock { state in
            defer { state.nextTicket += 1 }
            return state.nextTicket
        }
    }

    /// Keeps `continuation` until ``open()``; true when the caller is to resume it at once because the gate is
    /// already open. A cancellable waiter whose task is already cancelled is resumed here with the error.
    private func register(_ continuation: CheckedContinuation<Void, any Error>, ticket: Int, cancellable: Bool) -> Bool
    {
        let outcome = state.withLock { state -> Bool? in
            if state.opened { return true }
            if cancellable, Task.isCancelled { return false }
            state.waiters[ticket] = continuation
            return nil
        }
        switch outcome {
        case true?: return true
        case false?:
            continuation.resume(throwing: CancellationError())
            return false
        case nil: return false
        }
    }
}

/// An ordered log that concurrent tasks append to.
public actor Recorder<Element: Sendable> {
    public private(set) var items: [Element] = []

    public init() {}

    public func append(_ item: Element) { items.append(item) }
}
