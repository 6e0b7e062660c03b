extension DurableConfiguration {
    /// What a ``DurableRuntime`` does in this process: run workflows, or only talk to the database about them.
    public enum Mode: Sendable, Hashable {
        /// Runs workflows: at launch it recovers this executor's `PENDING` workflows, and from then on it serves
        /// its queues, fires its schedules, records heartbeats and takes over the work of silent executors.
        case worker
        /// Runs no workflow: for a process that only enqueues, sends messages, reads events, streams, statuses and
        /// results, or cancels (a command-line tool, a web handler beside the workers). It connects and prepares
        /// the schema as a worker does, but recovers nothing, serves no queue, fires no schedule and holds no
        /// executor ID, so it never takes a live worker's workflows. ``DurableRuntime/start(_:_:id:timeout:)`` and
        /// ``DurableRuntime/resume(_:)``, which would run a workflow here, throw
        /// ``DurableError/Code/invalidConfiguration``; enqueue onto a queue that workers serve instead.
        case client
    }
}
