import Synchronization

/// Lets concurrent writes of one kind share a statement and a commit when many arrive at once (group commit).
///
/// Up to `maxInFlight` writes run on their own, exactly as without batching, so a lone workflow pays nothing
/// extra. Writes arriving while all of those are busy wait; whenever one finishes, the waiting ones go to the
/// database together as one statement. Under load that turns many commits into one, which is what the database
/// (and two cores) spend their time on.
final class WriteBatcher<Request: Sendable, Response: Sendable>: Sendable {
    private struct Waiter {
        var request: Request
        var continuation: CheckedContinuation<Response, any Error>
    }

    private struct State {
        var inFlight = 0
        var waiting: [Waiter] = []
    }

    private let state = Mutex(State())
    private let maxInFlight: Int
    private let maxBatch: Int
    private let writeOne: @Sendable (Request) async throws -> Response
    /// Writes several at once; one result per request, in order, so one bad request fails only its own caller.
    private let writeMany: @Sendable ([Request]) async -> [Result<Response, any Error>]

    init(
        maxInFlight: Int, maxBatch: Int,
        writeOne: @escaping @Sendable (Request) async throws -> Response,
        writeMany: @escaping @Sendable ([Request]) async -> [Result<Response, any Error>]
    ) {
        self.maxInFlight = max(1, maxInFlight)
        self.maxBatch = max(1, maxBatch)
        self.writeOne = writeOne
        self.writeMany = writeMany
    }

    func submit(_ request: Request) async throws -> Response {
        if takeSlot() {
            defer { slotFinished() }
            return try await writeOne(request)
        }
        return try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(request: request, continuation: continuation)
            // A slot may have freed since the check above; then nobody would come to serve this waiter.
            let runNow = state.withLock { state -> Bool in
                if state.inFlight < maxInFlight {
                    state.inFlight += 1
                    return true
                }
                state.waiting.append(waiter)
                return false
            }
            if runNow { Task { await self.flush([waiter]) } }
        }
    }

    private func takeSlot() -> Bool {
        state.withLock { state in
            guard state.inFlight < maxInFlight else { return false }
            state.inFlight += 1
            return true
        }
    }

    /// A write finished: its slot serves the waiting writes, as one batch, or is freed.
    private func slotFinished() {
        let batch = state.withLock { state -> [Waiter]? in
            guard !state.waiting.isEmpty else {
                state.inFlight -= 1
                return nil
            }
            let count = min(maxBatch, state.waiting.count)
            defer { state.waiting.removeFirst(count) }
            return Array(state.waiting.prefix(count))
        }
        // In a task of its own: the caller whose write just finished goes on with its workflow meanwhile.
        if let batch { Task { await self.flush(batch) } }
    }

    private func flush(_ batch: [Waiter]) async {
        if batch.count == 1 {
            do {
                batch[0].continuation.resume(returning: try await writeOne(batch[0].request))
            } catch {
                batch[0].continuation.resume(throwing: error)
            }
        } else {
            let results = await writeMany(batch.map(\.request))
            guard results.count == batch.count else {
                // Never leave a caller waiting forever, whatever went wrong.
                let problem = DurableError(
                    .databaseError, "a batched write returned \(results.count) results for \(batch.count) writes")
                for waiter in batch { waiter.continuation.resume(throwing: problem) }
                slotFinished()
                return
            }
            for (waiter, result) in zip(batch, results) { waiter.continuation.resume(with: result) }
        }
        slotFinished()
    }
}
