import CLibPQ
import Glibc

/// A `NOTIFY` received on a connection that `LISTEN`s.
public struct PGNotification: Sendable, Equatable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload text.
    public var payload: String
}

extension PGConnection {
    /// Subscribes this connection to `channel`. Use a connection of its own: waiting for notifications
    /// occupies it.
    public func listen(_ channel: String) throws {
        try execute("LISTEN " + SQLIdentifier.quote(channel))
    }

    /// Sends a notification on `channel` (delivered when this connection's transaction commits; at once outside
    /// one). Both values are bound parameters.
    public func notify(_ channel: String, payload: String) throws {
        _ = try query("SELECT pg_notify($1, $2)", [channel, payload])
    }

    /// Waits up to `timeout` for notifications and returns those that arrived (possibly none).
    ///
    /// This blocks the connection's own thread, never Swift's cooperative pool. A lost connection throws
    /// ``PGError/Kind/connectionLost``; subscriptions do not survive a reconnect, so callers open a new
    /// connection and `LISTEN` again.
    public func waitForNotifications(timeout: Duration) throws -> [PGNotification] {
        guard let connection = rawHandleForListening() else {
            throw PGError(kind: .closed, message: "the connection is closed")
        }
        var received = drainNotifications(connection)
        if !received.isEmpty { return received }
        let socket = PQsocket(connection)
        guard socket >= 0 else {
            markListenerBroken()
            throw PGError(kind: .connectionLost, message: "the listening connection has no socket")
        }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(
            max(
                0,
                min(
                    timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000,
                    Int64(Int32.max))))
        let ready = poll(&descriptor, 1, milliseconds)
        if ready > 0 {
            if PQconsumeInput(connection) == 0 || PQstatus(connection) != CONNECTION_OK {
                markListenerBroken()
                throw PGError(kind: .connectionLost, message: "the listening connection was lost")
            }
            received = drainNotifications(connection)
        }
        return received
    }

    private func drainNotifications(_ connection: OpaquePointer) -> [PGNotification] {
        var received: [PGNotification] = []
        while let notification = PQnotifies(connection) {
            let channel = String(cString: notification.pointee.relname)
            let payload = String(cString: notification.pointee.extra)
            PQfreemem(notification)
            received.append(PGNotification(channel: channel, payload: payload))
        }
        return received
    }
}
