import Synchronization

/// A registered workflow, with its types erased: it takes the stored input JSON and returns the output JSON.
struct WorkflowRegistration: Sendable {
    let name: String
    let run: @Sendable (WorkflowContext, String, Int) async throws -> String

    init<W: Workflow>(_ workflow: W) {
        name = W.name
        run = { context, input, payloadLimit in
            let decoded = try PortableJSON.decodeInput(W.Input.self, from: input)
            let output = try await workflow.run(context, decoded)
            return try PortableJSON.encode(output, limit: payloadLimit, what: "the result of workflow '\(W.name)'")
        }
    }
}

/// The durable-name → code map that recovery uses to find a workflow's code after a restart.
final class WorkflowRegistry: Sendable {
    private struct State {
        var workflows: [String: WorkflowRegistration] = [:]
        var problems: [String] = []
    }

    private let state = Mutex(State())

    /// Adds a workflow. A mistake is remembered and reported by launch, so `register` itself never throws.
    func register<W: Workflow>(_ workflow: W) {
        state.withLock { state in
            if W.name.isEmpty {
                state.problems.append("\(W.self) has an empty durable name")
            } else if let problem = ArgumentChecks.problem(with: W.name) {
                state.problems.append("\(W.self)'s durable name \(problem)")
            } else if state.workflows[W.name] != nil {
                state.problems.append(
                    "two workflows are registered under the durable name '\(W.name)'; names must be unique")
            } else {
                state.workflows[W.name] = WorkflowRegistration(workflow)
            }
        }
    }

    /// Adds every workflow registered here, and every registration mistake, to `other`.
    func copy(into other: WorkflowRegistry) {
        let mine = state.withLock { $0 }
        other.state.withLock { state in
            state.workflows.merge(mine.workflows) { _, copied in copied }
            state.problems += mine.problems
        }
    }

    subscript(name: String) -> WorkflowRegistration? {
        state.withLock { $0.workflows[name] }
    }

    /// Every registered durable name.
    var names: [String] {
        state.withLock { Array($0.workflows.keys).sorted() }
    }

    /// Throws if any registration was invalid.
    func validate() throws {
        let problems = state.withLock { $0.problems }
        if !problems.isEmpty {
            throw DurableError(.invalidRegistration, problems.joined(separator: "; "))
        }
    }
}
