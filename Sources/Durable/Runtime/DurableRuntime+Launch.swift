import LibPQ

/// The parts of launch that are not bookkeeping: reaching the database, and what only a worker starts.
extension DurableRuntime {
    /// Opens one connection before anything else. A database this process has never reached is a configuration
    /// error (a wrong host, port, database name or password), so it fails at once, within ``DurableConfiguration/connectTimeout``,
    /// rather than being retried for ``DurableConfiguration/reconnectTimeout`` like an outage; unless the user
    /// asked to wait for a database that starts after this process (``DurableConfiguration/waitForDatabaseAtLaunch``).
    func reachDatabase(_ pool: ConnectionPool) async throws {
        let context = "could not connect to the database"
        guard let wait = configuration.waitForDatabaseAtLaunch else {
            do {
                try await pool.withConnection { _ in }
            } catch {
                throw DurableError.wrapping(error, context: context)
            }
            return
        }
        try await DatabaseRetry(timeout: wait, logger: logger).run("connect to the database") {
            try await pool.withConnection { _ in }
        }
    }

    /// What only a worker does at launch: holds its executor ID, recovers its workflows, then serves its queues,
    /// records heartbeats and fires its schedules.
    func startWorking(_ engine: WorkflowEngine, registeredInDatabase: Bool) async throws {
        // Before resuming anything: a second live process under this ID must not take the first one's workflows;
        // and a restarted executor whose last heartbeat is old would otherwise be taken over by a live one while
        // it recovers its own workflows (each claim has one winner, but the loser's work is wasted).
        if registeredInDatabase {
            try await engine.claimExecutorID()
            try await engine.beat()
        }
        try await engine.recoverPendingWorkflows()
        let served = engine.declaredQueues.values.filter { queue in
            queue.name == WorkflowQueue.internalQueueName
                || configuration.servedQueues.map { $0.contains(queue.name) } ?? true
        }
        engine.startDispatching(served.sorted { $0.name < $1.name })
        if registeredInDatabase { engine.startMonitoring() }
        let declaredSchedules = schedules.withLock { $0 }
        for schedule in declaredSchedules where registry[schedule.workflowName] == nil {
            throw DurableError(
                .invalidRegistration,
                "schedule '\(schedule.name)' runs workflow '\(schedule.workflowName)', which is not registered")
        }
        if !declaredSchedules.isEmpty { try await engine.startScheduling(declaredSchedules) }
    }
}
