extension NotificationListener {
    /// The one wait for something announced by a notification (a message, an event, a stream value): looks with
    /// `look` until it finds something, or `deadline` passes (nil then; no deadline waits for as long as the task
    /// lives).
    ///
    /// Between looks it sleeps until a notification on `channel` with `payload` arrives, or at most
    /// ``pollingInterval`` (and `longestSleep`, when given), which covers a lost notification. The wake-up ticket is
    /// taken before each look, so a notification sent between the look and the sleep is not missed. Cancelling the
    /// task ends the wait with `CancellationError`.
    func waitFor<Found: Sendable>(
        channel: String, payload: String, until deadline: ContinuousClock.Instant?, longestSleep: Duration? = nil,
        _ look: () async throws -> Found?
    ) async throws -> Found? {
        while true {
            let ticket = ticket(channel: channel, payload: payload)
            defer { remove(ticket) }
            if let found = try await look() { return found }
            var sleep = min(pollingInterval, longestSleep ?? pollingInterval)
            if let deadline {
                let remaining = ContinuousClock.now.duration(to: deadline)
                if remaining <= .zero { return nil }
                sleep = min(sleep, remaining)
            }
            try Task.checkCancellation()
            await ticket.wait(timeout: sleep)
            try Task.checkCancellation()
        }
    }
}
