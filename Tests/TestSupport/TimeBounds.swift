import Synchronization

// Time bounds for tests. They tell a hang from a slow run and say nothing about speed: every bound is generous,
// because a loaded machine (a full parallel run on two cores) stretches everything.

/// Raised by ``within(_:_:_:)`` when the body did not finish in time: a hang, not a slow run.
public struct TimedOut: Error, CustomStringConvertible {
    public var seconds: Double
    public var what: String
    public var description: String { "\(what) did not finish within \(seconds) s (hang?)" }

    public init(seconds: Double, what: String) {
        self.seconds = seconds
        self.what = what
    }
}

/// Runs `body` and fails with ``TimedOut`` if it has not finished within `seconds`. The body runs in its own
/// task and is cancelled (not awaited) on timeout, so a body stuck in a blocking call cannot hang the test.
public func within<T: Sendable>(
    _ seconds: Double,
    _ what: String = "operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    // Whichever of the body and the timer comes first resumes the continuation; the other finds it taken.
    let once = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let resume: @Sendable (Result<T, any Error>) -> Bool = { result in
        guard
            let continuation = once.withLock({ current -> CheckedContinuation<T, any Error>? in
                defer { current = nil }
                return current
            })
        else { return false }
        continuation.resume(with: result)
        return true
    }
    return try await withCheckedThrowingContinuation { continuation in
        once.withLock { $0 = continuation }
        let work = Task {
            do { _ = resume(.success(try await body())) } catch { _ = resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            if resume(.failure(TimedOut(seconds: seconds, what: what))) { work.cancel() }
        }
    }
}

/// What `body` returns, or nil when it has not returned within `timeout` (it is then cancelled, as in
/// ``within(_:_:_:)``): for awaiting a result that a bug would make wait forever, where the test asserts on nil.
public func valueWithin<T: Sendable>(
    _ timeout: Duration,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T? {
    do {
        return try await within(timeout.inSeconds, "a value", body)
    } catch is TimedOut {
        return nil
    }
}

/// Polls `condition` every 50 ms until it holds, failing with ``TimedOut`` after `seconds`.
public func eventually(
    _ seconds: Double = 60,
    _ what: String,
    _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    try await within(seconds, what) {
        while try await !condition() {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Polls `condition` every `interval` until it holds and returns true; returns its last answer once `timeout` has
/// passed. For tests that assert on the answer (`#expect(await eventually(timeout: …) { … })`) rather than fail
/// with an error, so later checks still run and report.
public func eventually(
    timeout: Duration = .seconds(30),
    every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    // A cancelled task's sleep returns at once: stop polling then instead of spinning until the deadline.
    while ContinuousClock.now < deadline, !Task.isCancelled {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Seconds elapsed since `start`.
public func seconds(since start: ContinuousClock.Instant) -> Double {
    (ContinuousClock.now - start).inSeconds
}

extension Duration {
    /// This duration in seconds, with its fraction.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
