import Foundation
import LibPQ
import Testing

@testable import Durable

/// Claims (queue dequeues, recovery, takeover) retried after a connection problem. The lost attempt may have
/// committed; what it took must not stay PENDING under a live executor that never runs it.
@Suite("Claims retried after a lost connection")
struct ClaimRetryTests {
    /// Makes the next UPDATE of workflow_status fail as a lost connection would (SQLSTATE 57P01), once: a sequence
    /// is not rolled back with the failed statement.
    func failFirstUpdate(_ harness: MessagingHarness) async throws {
        _ = try await harness.query("CREATE SEQUENCE claim_trip")
        _ = try await harness.query(
            """
            CREATE FUNCTION claim_fails_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('claim_trip') = 1 THEN RAISE EXCEPTION 'the connection broke' USING ERRCODE = '57P01'; END IF;
                RETURN NEW;
            END $$
            """)
        _ = try await harness.query(
            "CREATE TRIGGER claim_fails_once BEFORE UPDATE ON dbos.workflow_status FOR EACH ROW EXECUTE FUNCTION claim_fails_once()"
        )
    }

    @Test("a recovery or takeover claim whose connection broke after it committed hands over what it took when retried")
    func recoveryClaimAfterLostConnection() async throws {
        let (database, harness) = try await GroupCommitTests().database("recovery_claim_lost")
        try await GroupCommitTests().startWorkflows(database, ["orphan"], token: "old")
        // As the lost attempt left it: taken from the dead executor "e" under new-token, its attempt counted.
        _ = try await harness.query(
            "UPDATE dbos.workflow_status SET owner_xid = 'new-token', executor_id = 'me', recovery_attempts = 2 WHERE workflow_uuid = 'orphan'"
        )
        try await failFirstUpdate(harness)
        let claimed = try await database.claimForRecovery(
            [SystemDatabase.PendingWorkflow(id: "orphan", name: "w", ownerToken: "old")], newToken: "new-token",
            from: "e",
            executorID: "me", payloadLimit: 1_000_000)
        // Before the fix the retry matched nothing (no longer "e"'s, no longer "old"), and it stayed PENDING unrun.
        #expect(claimed.map(\.id) == ["orphan"])
        #expect(claimed.first?.recoveryAttempts == 2)  // counted once, by the attempt that committed
        await database.pool.close()
    }

    @Test(
        "a queue claim whose connection broke after it committed hands over what it took when retried, instead of stranding it PENDING"
    )
    func claimAfterLostConnection() async throws {
        let (database, harness) = try await GroupCommitTests().database("claim_lost")
        try await GroupCommitTests().startWorkflows(database, ["taken", "waiting"], token: "creator")
        // "taken" as a claim under tok-lost left it when the connection broke before the answer came back.
        _ = try await harness.query(
            "UPDATE dbos.workflow_status SET status = 'PENDING', owner_xid = 'tok-lost', queue_name = 'q' WHERE workflow_uuid = 'taken'"
        )
        _ = try await harness.query(
            "UPDATE dbos.workflow_status SET status = 'ENQUEUED', owner_xid = NULL, queue_name = 'q' WHERE workflow_uuid = 'waiting'"
        )
        try await failFirstUpdate(harness)
        let claimed = try await database.claimQueued(
            queue: WorkflowQueue("q"), partition: nil, limit: 10, token: "tok-lost", executorID: "e",
            applicationVersion: "v",
            names: ["w"], payloadLimit: 1_000_000)
        // Before the fix the retry claimed "waiting" and "taken" stayed PENDING under a live executor, never run.
        #expect(claimed.map(\.id) == ["taken"])
        let waiting = try await harness.query("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'waiting'")
        #expect(waiting.first?.string(0) == "ENQUEUED")
        await database.pool.close()
    }
}
