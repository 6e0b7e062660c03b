import Foundation
import Logging
import Synchronization

/// The instances of runtimes launched in this process and not yet shut down, by instance ID: a row in
/// `durable_executor_instances` that names this very process is alive exactly when its ID is here.
private let liveInstancesHere = Mutex<Set<String>>([])

extension WorkflowEngine {
    /// The length of an instance ID: the first two groups of a UUID's text ("xxxxxxxx-xxxx", 48 random bits).
    static let instanceIDLength = 13

    /// A new owner token for a run: a UUID's text whose first characters are this instance's ID, so any process
    /// can tell from `owner_xid` which process holds a workflow, and whether that process is alive. It stays
    /// 36 characters, as DBOS's own tokens (its TypeScript schema declares the column `VARCHAR(40)`).
    func newRunToken() -> String {
        instanceID + UUID().uuidString.lowercased().dropFirst(Self.instanceIDLength)
    }

    /// Records this process as a holder of its executor ID, then makes sure no other live process holds it too,
    /// unless ``DurableConfiguration/allowsSharedExecutorID`` says processes may share it.
    ///
    /// Another holder is judged by what can be known about it: on this host, whether its process still runs
    /// (a restart after a crash finds the old process gone at once); on another host, whether its heartbeat
    /// advances (this waits up to three of its heartbeat intervals, only when such a holder looks recent). A
    /// holder found dead is forgotten. Of two live holders the one that registered first keeps the ID, so two
    /// processes launching at the same moment do not both give up.
    ///
    /// - Throws: ``DurableError/Code/executorIDInUse`` when an earlier live process holds the ID.
    func claimExecutorID() async throws {
        try await database.registerInstance(
            instanceID, executorID: configuration.executorID, applicationVersion: configuration.applicationVersion,
            process: .current, heartbeatInterval: Self.milliseconds(configuration.heartbeatInterval)
        )
        liveInstancesHere.withLock { _ = $0.insert(instanceID) }
        // On a refusal the launch shuts the engine down, which gives the registration up again.
        try await ensureNoOtherLiveHolder()
    }

    private func ensureNoOtherLiveHolder() async throws {
        var firstHeartbeatSeen: [String: Int64] = [:]
        var loggedWait = false
        while true {
            var undecided = false
            for holder in try await database.executorHolders(configuration.executorID, besides: instanceID) {
                switch isAlive(holder, firstHeartbeatSeen: &firstHeartbeatSeen) {
                case false?:
                    logger.info(
                        "a process that held this executor ID is gone; its workflows are recovered here",
                        metadata: [
                            "executor": "\(configuration.executorID)", "host": "\(holder.process.host)",
                            "pid": "\(holder.process.processID)",
                        ])
                    try await database.forgetInstance(holder)
                case true?:
                    // A later holder gives up by itself (it sees this one as earlier); shared IDs are the user's choice.
                    guard holder.isEarlier, !configuration.allowsSharedExecutorID else { continue }
                    throw DurableError(
                        .executorIDInUse,
                        "executor ID '\(configuration.executorID)' is held by a live process (host \(holder.process.host), pid \(holder.process.processID)); give each process its own DurableConfiguration.executorID (or set the DBOS__VMID environment variable), or launch a process that only starts, sends or reads with DurableConfiguration.mode = .client; set allowsSharedExecutorID only if the processes should share one ID"
                    )
                case nil:
                    if holder.isEarlier && !configuration.allowsSharedExecutorID { undecided = true }
                }
            }
            guard undecided else { return }
            if !loggedWait {
                logger.info(
                    "another process on another host held this executor ID recently; waiting for its next heartbeat to tell whether it is alive",
                    metadata: [
                        "executor": "\(configuration.executorID)"
                    ])
                loggedWait = true
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// true: alive; false: dead; nil: not known yet (a recent holder on another host whose heartbeat has not moved).
    /// On this host the process table decides, whatever the heartbeat says (a loaded machine delays heartbeats);
    /// elsewhere a heartbeat older than three intervals means dead.
    private func isAlive(_ holder: SystemDatabase.ExecutorHolder, firstHeartbeatSeen: inout [String: Int64]) -> Bool? {
        let here = ProcessIdentity.current
        if holder.process.host == here.host {
            if holder.process.processID == here.processID {
                // This very process: one of its runtimes, or the process this one replaced (a container restarted
                // under the same host name, where both were pid 1).
                return liveInstancesHere.withLock { $0.contains(holder.instanceID) }
            }
            return holder.process.isRunning
        }
        if holder.silentMilliseconds > Int64(SystemDatabase.liveHeartbeats) * holder.heartbeatIntervalMilliseconds {
            return false
        }
        guard let first = firstHeartbeatSeen[holder.instanceID] else {
            firstHeartbeatSeen[holder.instanceID] = holder.lastHeartbeat
            return nil
        }
        return holder.lastHeartbeat != first ? true : nil
    }

    /// Records this process's heartbeat (and its executor's). A process whose row is gone was judged dead by
    /// another while it did not answer; it registers again, and says loudly that the ID may now be shared.
    func beat() async throws {
        let present = try await database.recordHeartbeat(
            executorID: configuration.executorID, applicationVersion: configuration.applicationVersion,
            instanceID: instanceID
        )
        guard !present else { return }
        logger.error(
            "another process judged this one dead while it did not answer (a pause longer than three heartbeats) and may now hold the same executor ID; if so, stop one of them",
            metadata: [
                "executor": "\(configuration.executorID)"
            ])
        try await database.registerInstance(
            instanceID, executorID: configuration.executorID, applicationVersion: configuration.applicationVersion,
            process: .current, heartbeatInterval: Self.milliseconds(configuration.heartbeatInterval)
        )
    }

    /// Gives the executor ID up (graceful shutdown): another process may take it at once, and a process sharing it
    /// resumes this one's interrupted workflows at its next heartbeat.
    func releaseExecutorID() async {
        liveInstancesHere.withLock { _ = $0.remove(instanceID) }
        do {
            try await database.removeInstance(instanceID)
        } catch {
            logger.warning(
                "could not unregister this process; another process under its executor ID can launch once its heartbeat is old",
                metadata: ["error": "\(error)"])
        }
    }
}
