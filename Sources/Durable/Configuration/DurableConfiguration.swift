import Foundation

/// Everything a ``DurableRuntime`` needs to know. Only the database URL is required.
public struct DurableConfiguration: Sendable {
    /// The Postgres that holds the workflow tables: a `postgresql://` URL or a libpq `key=value` string.
    /// Its password never appears in logs or errors.
    public var databaseURL: String
    /// The schema for the system tables. `dbos` by default, so DBOS's own client and CLI find them.
    public var schema: String
    /// This process's executor ID. On launch the runtime recovers the `PENDING` workflows recorded under this ID
    /// and ``applicationVersion``. Defaults to the `DBOS__VMID` environment variable, else `local`.
    ///
    /// `local` suits one process per machine that restarts under the same ID. When several processes run at once
    /// against one database, give each its own stable ID (`worker-1`, `worker-2`, or `DBOS__VMID` from the
    /// deployment): a launch whose ID a live process already holds throws ``DurableError/Code/executorIDInUse``
    /// (see ``allowsSharedExecutorID``). A process that only starts, sends or reads uses ``mode`` `.client` and
    /// needs no ID of its own.
    public var executorID: String
    /// Whether several live processes may hold ``executorID`` at once. Off by default: a second process under the
    /// same ID refuses to launch, because DBOS's tools and its recovery treat an executor ID as one process. When
    /// on, each process recovers only the workflows of the ID that no live process holds, and resumes at each
    /// heartbeat those a sharer left behind (it shut down or died mid-run).
    public var allowsSharedExecutorID: Bool
    /// Whether this runtime runs workflows (``Mode/worker``, the default) or only talks about them
    /// (``Mode/client``: no recovery, queues, schedules or heartbeats).
    public var mode: Mode
    /// The version of the workflow code. Defaults to `DBOS__APPVERSION`, else ``defaultApplicationVersion``.
    /// It is deliberately not a hash of the code, so an ordinary deploy does not strand in-flight workflows.
    public var applicationVersion: String
    /// The most database connections the runtime opens at once.
    public var maxConnections: Int
    /// How long a caller waits for a pooled connection before ``DurableError/Code/poolExhausted``.
    public var connectionAcquireTimeout: Duration
    /// How long opening one connection may take. At launch, a database this process has not reached yet is a
    /// configuration error: launch fails after this long at most (at once for a host name that does not resolve
    /// or a refused port), unless ``waitForDatabaseAtLaunch`` is set.
    public var connectTimeout: Duration
    /// How long launch keeps trying to reach a database that does not answer yet, for a container that starts
    /// before its database. nil (the default): launch fails on its first failed connection attempt.
    public var waitForDatabaseAtLaunch: Duration?
    /// How long database work is retried after the connection is lost (a Postgres restart, a network blip)
    /// before the error reaches the caller. (It applies once the database has been reached: see
    /// ``waitForDatabaseAtLaunch`` for the start.)
    public var reconnectTimeout: Duration
    /// A workflow recovered more often than this is moved to `MAX_RECOVERY_ATTEMPTS_EXCEEDED` instead of being
    /// run again. DBOS's default is 100.
    public var maxRecoveryAttempts: Int
    /// Create or check the system schema at launch. Turn off when migrations run separately; the runtime then
    /// only verifies that the schema exists.
    public var autoMigrate: Bool
    /// The largest encoded input, output or step result, in bytes. Bigger values are refused when written, and
    /// recorded ones are not loaded on recovery (that workflow fails instead of the process running out of memory).
    public var maxPayloadBytes: Int
    /// Prepare statements once per connection. Turn off behind a pooler that does not support them.
    public var usePreparedStatements: Bool
    /// The queues this process starts workflows from; nil (the default) serves every declared queue. DBOS's
    /// internal queue (used by its resume and fork) is always served.
    public var servedQueues: Set<String>?
    /// How often this executor records that it is alive, and checks that its runs still own their workflows (a run
    /// whose workflow was cancelled by a tool that sends no notification, or taken elsewhere, is stopped then; a
    /// parked sleep that holds no queue slot is checked at its wake-up time instead).
    public var heartbeatInterval: Duration
    /// An executor of the same application version silent for this long is presumed dead, and a live one takes
    /// over its `PENDING` workflows. nil turns takeover off (heartbeats are still recorded). Keep it well above
    /// ``heartbeatInterval`` and any pause a healthy process may have.
    public var takeoverAfter: Duration?
    /// A durable sleep longer than this *parks* its workflow: the run ends, holding no task and no memory but a
    /// timer entry, and at the wake-up time the workflow is replayed from its checkpoints up to the sleep and goes
    /// on. This is what lets one process hold many thousands of sleeping workflows. nil keeps every sleeper in
    /// memory. Code outside steps runs again at each replay, as it does after a crash.
    public var parkSleepsLongerThan: Duration?
    /// How often a waiting `recv` or `getEvent` looks in the database when no notification comes,
    /// while LISTEN/NOTIFY works: a safety net only, as notifications wake waiters at once and a listener that
    /// reconnects wakes them all to look. Each look is a query per waiter, so thousands of workflows waiting days
    /// for an approval would keep the database busy if this were short. (DBOS waits 60 s.) When LISTEN/NOTIFY does
    /// not reach this process (a transaction-mode pooler), waiters look every 200 ms whatever this says.
    public var notificationFallbackInterval: Duration

    /// The application version used when neither the configuration nor `DBOS__APPVERSION` names one.
    public static let defaultApplicationVersion = "1"

    /// Creates a configuration with defaults for everything but the database URL.
    public init(
        databaseURL: String,
        schema: String = "dbos",
        executorID: String? = nil,
        applicationVersion: String? = nil,
        mode: Mode = .worker,
        allowsSharedExecutorID: Bool = false,
        maxConnections: Int = 16,
        connectionAcquireTimeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10),
        waitForDatabaseAtLaunch: Duration? = nil,
        reconnectTimeout: Duration = .seconds(60),
        maxRecoveryAttempts: Int = 100,
        autoMigrate: Bool = true,
        maxPayloadBytes: Int = 32 * 1024 * 1024,
        usePreparedStatements: Bool = true,
        servedQueues: Set<String>? = nil,
        heartbeatInterval: Duration = .seconds(5),
        takeoverAfter: Duration? = .seconds(60),
        parkSleepsLongerThan: Duration? = .seconds(30),
        notificationFallbackInterval: Duration = .seconds(30)
    ) {
        let environment = ProcessInfo.processInfo.environment
        self.databaseURL = databaseURL
        self.schema = schema
        self.executorID = executorID ?? environment["DBOS__VMID"].flatMap { $0.isEmpty ? nil : $0 } ?? "local"
        self.applicationVersion =
            applicationVersion
            ?? environment["DBOS__APPVERSION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? Self.defaultApplicationVersion
        self.mode = mode
        self.allowsSharedExecutorID = allowsSharedExecutorID
        self.waitForDatabaseAtLaunch = waitForDatabaseAtLaunch
        self.maxConnections = maxConnections
        self.connectionAcquireTimeout = connectionAcquireTimeout
        self.connectTimeout = connectTimeout
        self.reconnectTimeout = reconnectTimeout
        self.maxRecoveryAttempts = maxRecoveryAttempts
        self.autoMigrate = autoMigrate
        self.maxPayloadBytes = maxPayloadBytes
        self.usePreparedStatements = usePreparedStatements
        self.servedQueues = servedQueues
        self.heartbeatInterval = heartbeatInterval
        self.takeoverAfter = takeoverAfter
        self.parkSleepsLongerThan = parkSleepsLongerThan
        self.notificationFallbackInterval = notificationFallbackInterval
    }

    /// Checks the values before anything connects, so a mistake surfaces as one clear error at launch.
    func validate() throws {
        func invalid(_ message: String) -> DurableError { DurableError(.invalidConfiguration, message) }
        if databaseURL.trimmingCharacters(in: .whitespaces).isEmpty {
            throw invalid("databaseURL is empty; pass a postgresql:// URL")
        }
        if schema.isEmpty { throw invalid("schema is empty; leave it at \"dbos\" unless you need another name") }
        if schema.utf8.count > 63 { throw invalid("schema name is longer than PostgreSQL's 63-byte limit") }
        if schema.contains("\0") { throw invalid("schema name contains a NUL byte") }
        // The migration bodies are dollar-quoted; a `$$` in the name would end them early.
        if schema.contains("$") { throw invalid("schema name may not contain '$'") }
        if executorID.isEmpty { throw invalid("executorID is empty") }
        if applicationVersion.isEmpty { throw invalid("applicationVersion is empty") }
        if maxConnections < 2 { throw invalid("maxConnections must be at least 2 (got \(maxConnections))") }
        if maxRecoveryAttempts < 0 { throw invalid("maxRecoveryAttempts must not be negative") }
        if maxPayloadBytes < 1024 { throw invalid("maxPayloadBytes must be at least 1024") }
        if heartbeatInterval <= .zero { throw invalid("heartbeatInterval must be positive") }
        if connectTimeout < .seconds(1) {
            throw invalid("connectTimeout must be at least one second (libpq counts it in whole seconds)")
        }
        if let waitForDatabaseAtLaunch, waitForDatabaseAtLaunch < .zero {
            throw invalid("waitForDatabaseAtLaunch must not be negative")
        }
        if let problem = ArgumentChecks.problem(with: executorID) { throw invalid("executorID \(problem)") }
        if let problem = ArgumentChecks.problem(with: applicationVersion) {
            throw invalid("applicationVersion \(problem)")
        }
        if let parkSleepsLongerThan, parkSleepsLongerThan < .zero {
            throw invalid("parkSleepsLongerThan must not be negative")
        }
        if notificationFallbackInterval <= .zero { throw invalid("notificationFallbackInterval must be positive") }
        if let takeoverAfter, takeoverAfter <= heartbeatInterval * 2 {
            throw invalid(
                "takeoverAfter (\(takeoverAfter)) must be more than twice heartbeatInterval (\(heartbeatInterval)), or a live executor could be taken over"
            )
        }
    }
}
