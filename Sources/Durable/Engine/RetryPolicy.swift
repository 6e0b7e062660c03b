/// How a step retries its body when it throws: a number of attempts with exponential back-off.
///
/// ```swift
/// let reply = try await ctx.step("ask-model", retry: .init(maxAttempts: 5, initialInterval: .seconds(1))) {
///     try await model.complete(prompt)
/// }
/// ```
/// Only the last error is checkpointed. Cancelling the workflow interrupts the back-off at once.
public struct RetryPolicy: Sendable {
    /// Total attempts, the first included. 1 means no retries.
    public var maxAttempts: Int
    /// The wait before the second attempt.
    public var initialInterval: Duration
    /// Each further wait is the previous one times this factor.
    public var backoffFactor: Double
    /// No wait is longer than this.
    public var maxInterval: Duration
    /// Decides whether an error is worth another attempt; by default every error is.
    public var shouldRetry: @Sendable (any Error) -> Bool

    /// No retries: the first error is recorded.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// Creates a policy. Values out of range are clamped: at least one attempt, no negative intervals, a factor
    /// of at least 1.
    public init(
        maxAttempts: Int = 3,
        initialInterval: Duration = .seconds(1),
        backoffFactor: Double = 2,
        maxInterval: Duration = .seconds(3600),
        shouldRetry: @escaping @Sendable (any Error) -> Bool = { _ in true }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialInterval = max(.zero, initialInterval)
        self.backoffFactor = max(1, backoffFactor)
        self.maxInterval = max(.zero, maxInterval)
        self.shouldRetry = shouldRetry
    }

    /// The wait after attempt `attempt` (1-based) failed.
    func delay(afterAttempt attempt: Int) -> Duration {
        var delay = initialInterval
        for _ in 1..<max(1, attempt) {
            delay = delay * backoffFactor
            if delay >= maxInterval { return maxInterval }
        }
        return min(delay, maxInterval)
    }
}
