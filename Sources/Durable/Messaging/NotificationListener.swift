import Foundation
import LibPQ
import Logging
import Synchronization

/// Turns Postgres `NOTIFY`s into immediate wake-ups for waiting workflows and callers, on a connection of its own.
///
/// Notifications only speed things up: every waiter also re-checks the database periodically, so a lost
/// notification (a reconnect, a transaction-mode pooler that drops `LISTEN`) costs latency, never correctness.
/// At start the listener sends itself a notification; if it does not arrive, it says so in the log and waiters
/// fall back to frequent polling.
final class NotificationListener: Sendable {
    /// DBOS's channels: messages (payload `destination::topic`, sent by the `notifications` trigger) and
    /// events (payload `workflow::key`, sent by the writer).
    static let messagesChannel = "dbos_notifications_channel"
    static let eventsChannel = "dbos_workflow_events_channel"

    private struct State {
        var waiters: [String: [ObjectIdentifier: WakeTicket]] = [:]
        var healthy = false
        /// New messages send no notification (the schema has no message trigger): waiters must look more often.
        var messagesUnannounced = false
        var onCancellation: (@Sendable (String) -> Void)?
    }

    private let configuration: PGConfiguration
    private let logger: Logger
    private let fallbackInterval: Duration
    private let state = Mutex(State())
    private let loop = BackgroundLoop()

    /// - Parameter fallbackInterval: how often waiters look in the database while notifications arrive
    ///   (``DurableConfiguration/notificationFallbackInterval``).
    init(configuration: PGConfiguration, logger: Logger, fallbackInterval: Duration) {
        self.configuration = configuration
        self.logger = logger
        self.fallbackInterval = fallbackInterval
    }

    /// How often a waiter re-checks the database when no notification comes: rarely while notifications work
    /// (each look is a query per waiter), often when they do not reach this process.
    var pollingInterval: Duration {
        let (healthy, unannounced) = state.withLock { ($0.healthy, $0.messagesUnannounced) }
        guard healthy else { return .milliseconds(200) }
        return unannounced ? min(fallbackInterval, .seconds(1)) : fallbackInterval
    }

    /// Tells waiters that new messages come without a notification, so they look at least once a second.
    func messagesComeUnannounced() {
        state.withLock { $0.messagesUnannounced = true }
    }

    static func key(channel: String, payload: String) -> String { channel + "|" + payload }

    /// Registers interest in one notification key. Register before checking the database, then wait, so that a
    /// notification arriving in between is not missed.
    func ticket(channel: String, payload: String) -> WakeTicket {
        let ticket = WakeTicket(key: Self.key(channel: channel, payload: payload))
        state.withLock { $0.waiters[ticket.key, default: [:]][ObjectIdentifier(ticket)] = ticket }
        return ticket
    }

    /// Forgets a ticket once its waiter is done.
    func remove(_ ticket: WakeTicket) {
        state.withLock { state in
            state.waiters[ticket.key]?[ObjectIdentifier(ticket)] = nil
            if state.waiters[ticket.key]?.isEmpty == true { state.waiters[ticket.key] = nil }
        }
    }

    /// Called with the workflow ID whenever any process announces a cancellation.
    func onCancellation(_ handler: @escaping @Sendable (String) -> Void) {
        state.withLock { $0.onCancellation = handler }
    }

    func start() {
        loop.start { [self] in await self.listenUntilCancelled() }
    }

    func stop() async {
        await loop.stop()
    }

    private func listenUntilCancelled() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            var connection: PGConnection?
            do {
                let opened = try await PGConnection.connect(configuration)
                connection = opened
                try await opened.listen(Self.messagesChannel)
                try await opened.listen(Self.eventsChannel)
                try await opened.listen(SystemDatabase.cancellationChannel)
                try await opened.listen(SystemDatabase.streamsChannel)
                try await opened.listen(SystemDatabase.queueWakeupChannel)
                try await checkDelivery(on: opened)
                delay = .milliseconds(100)
                // Anything sent while we were not listening is only in the database: let every waiter look.
                wakeEveryone()
                while !Task.isCancelled {
                    for notification in try await opened.waitForNotifications(timeout: .milliseconds(500)) {
                        deliver(notification)
                    }
                }
            } catch {
                // Waiters may be in a long wait counting on notifications: wake them to look now and then poll.
                if setHealthy(false) { wakeEveryone() }
                if !Task.isCancelled {
                    logger.warning(
                        "notification listener lost its connection; waiters poll until it is back",
                        metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
            await connection?.close()
        }
        setHealthy(false)
    }

    /// Sends a notification to ourselves through a second connection and waits for it: behind a transaction
    /// pooler `LISTEN` is silently lost, and then we must rely on polling.
    private func checkDelivery(on listening: PGConnection) async throws {
        let probe = "durable-self-check::" + UUID().uuidString
        let sender = try await PGConnection.connect(configuration)
        defer { Task { await sender.close() } }
        try await sender.notify(Self.eventsChannel, payload: probe)
        let deadline = ContinuousClock.now.advanced(by: .seconds(2))
        while ContinuousClock.now < deadline {
            for notification in try await listening.waitForNotifications(timeout: .milliseconds(200)) {
                if notification.payload == probe {
                    setHealthy(true)
                    return
                }
                deliver(notification)
            }
        }
        setHealthy(false)
        logger.warning(
            "LISTEN/NOTIFY does not reach this process (a transaction-mode pooler?); waiting workflows poll the database instead"
        )
    }

    /// Returns whether it was healthy before.
    @discardableResult
    private func setHealthy(_ healthy: Bool) -> Bool {
        state.withLock { state in
            defer { state.healthy = healthy }
            return state.healthy
        }
    }

    private func deliver(_ notification: PGNotification) {
        if notification.channel == SystemDatabase.cancellationChannel {
            state.withLock { $0.onCancellation }?(notification.payload)
        } else {
            wake(Self.key(channel: notification.channel, payload: notification.payload))
        }
    }

    private func wake(_ key: String) {
        // Tickets for one payload, plus those for any payload on the channel (see ``anyPayload``).
        let channelWide = key.split(separator: "|", maxSplits: 1).first.map { $0 + "|" + Self.anyPayload } ?? ""
        let tickets = state.withLock {
            Array(($0.waiters[key] ?? [:]).values) + Array(($0.waiters[channelWide] ?? [:]).values)
        }
        tickets.forEach { $0.fire() }
    }

    /// The payload to register for to be woken by any notification on a channel.
    static let anyPayload = "\u{1F}any"

    private func wakeEveryone() {
        let tickets = state.withLock { $0.waiters.values.flatMap(\.values) }
        tickets.forEach { $0.fire() }
    }
}
