import Synchronization

// Instrumentation for DurableTesting's crash tests (`DurableRuntime.crashTest`).
//
// Why a hook in the engine: a crash "after step N" must stop the run between the commit of step N's checkpoint and
// whatever the run would write next. Nothing outside the run can time that (watching `operation_outputs` from
// another task would let step N+1 run first), so the run itself must stop there.
//
// Why `package` access: only DurableTesting, a target of this package, arms a watch. An application that depends
// on the Durable product cannot see or arm one, and a runtime where nothing is armed behaves exactly as before:
// the only cost is one lookup in an empty dictionary when a run starts.

/// What one workflow's next run in a runtime should do besides running, and whom to tell how it ended.
package struct RunWatch: Sendable {
    /// When set, the run ends as a crash would once it has completed this many durable operations: at the moment
    /// it begins operation `crashAfterStep + 1`, or would record its outcome or park, it stops, writes nothing
    /// more (the workflow stays `PENDING` with steps 1…N recorded), and every later durable call of the body
    /// throws. 0 stops it before its first operation.
    package var crashAfterStep: Int?
    /// Called once, when the run has ended, on the run's task.
    package var onEnd: @Sendable (RunReport) -> Void

    /// A watch; see the properties.
    package init(crashAfterStep: Int? = nil, onEnd: @escaping @Sendable (RunReport) -> Void) {
        self.crashAfterStep = crashAfterStep
        self.onEnd = onEnd
    }
}

/// How a watched run ended.
package struct RunReport: Sendable {
    /// How a run ended.
    package enum Ending: Sendable, Equatable {
        /// Stopped by the simulated crash of its ``RunWatch``.
        case crashed
        /// Its result was recorded.
        case succeeded
        /// Its error was recorded.
        case failed
        /// It stopped without recording an outcome (shutdown, cancellation, a timeout, or the workflow is
        /// another run's now).
        case interrupted
        /// It ended at a long durable sleep, to be replayed when it wakes.
        case parked
    }

    /// How the run ended.
    package var ending: Ending
    /// The number of its last durable operation (0 when it began none).
    package var stepsTaken: Int
    /// The step numbers recorded by earlier runs when this run began, in order. Each one the run reached
    /// (up to ``stepsTaken``) was served from its checkpoint: its body did not run again.
    package var recordedBefore: [Int]
}

/// The watches armed in one runtime, by workflow ID; each applies to the next run of its workflow, once.
final class RunWatches: Sendable {
    private let armed = Mutex<[String: RunWatch]>([:])

    func arm(_ workflowID: String, _ watch: RunWatch) {
        armed.withLock { $0[workflowID] = watch }
    }

    /// The watch for a run of `workflowID` that is starting, removed so that it applies to this run only.
    func take(_ workflowID: String) -> RunWatch? {
        armed.withLock { $0.isEmpty ? nil : $0.removeValue(forKey: workflowID) }
    }
}

/// Unwinds a workflow body stopped by a ``RunWatch``'s simulated crash.
struct SimulatedCrash: Error, CustomStringConvertible {
    var afterStep: Int
    var description: String { "the run was stopped after step \(afterStep) by a simulated crash (DurableTesting)" }
}
