// Evaluates a batch of IAM requests with @cloud-copilot/iam-simulate (a test-time dev dependency only).
//
// stdin:  a JSON array of {"id": string, "simulation": <iam-simulate Simulation>}
// stdout: one JSON line per request, in order:
//         {"id", "resultType", "decision", "grants", "denials", "ignoredContextKeys", "errors"}
//
// Deliberately dumb: it knows nothing about the stack. Policies, principals, ARNs and context keys are
// all built by the Python side (tests/infrastructure/access_matrix/), which also judges the results.
let simulate
try {
  simulate = await import('@cloud-copilot/iam-simulate')
} catch (error) {
  process.stderr.write(
    `cannot load @cloud-copilot/iam-simulate (${error.message}). Fix: run \`make install\` ` +
      '(npm ci installs the pinned devDependency from package-lock.json)\n'
  )
  process.exit(3)
}
const { runSimulation, getDenialReasons, getGrantReasons } = simulate

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'))

for (const { id, simulation } of requests) {
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  const line = { id, resultType: response.resultType }
  if (response.resultType === 'single') {
    const analysis = response.result.analysis
    line.decision = response.overallResult
    line.grants = getGrantReasons(analysis)
    line.denials = getDenialReasons(analysis)
    line.ignoredContextKeys = response.result.ignoredContextKeys ?? []
  } else if (response.resultType === 'error') {
    line.errors = response.errors
  } else {
    line.decision = response.overallResult // a wildcard resource: the Python side refuses these
  }
  process.stdout.write(JSON.stringify(line) + '\n')
}
