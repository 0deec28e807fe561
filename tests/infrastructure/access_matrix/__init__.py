"""The access matrix: every access rule of the synthesized stack, evaluated by a maintained IAM evaluator.

What it proves. moto enforces no IAM, bucket-policy or key-policy condition, so the stack's access rules
are checked here instead: each row of ``rows.ROWS`` is one request — principal, action, resource and
request context — and the decision IAM must reach (Allowed or Denied). ``template.ResolvedStack`` turns
the synthesized CloudFormation template into concrete policy documents (identity policies per role, and
customer-managed policies the stack leaves for people's roles; bucket, key, queue, topic, trust and
Lambda function policies — the latter from ``AWS::Lambda::Permission`` — per resource) with fake but
consistent ARNs in account
123456789012 / us-east-1, and ``evaluator.Evaluator`` asks ``@cloud-copilot/iam-simulate`` (through the
tiny ``simulate.mjs``, one node process per batch) for the decision, combining identity and resource
policies as AWS does (same-account trust, KMS key-policy trust, service principals, explicit Denies).

How to add a row. Append one ``Row(...)`` line to ``rows.ROWS``: a unique name, a principal symbol, the
IAM action the API call is authorised as (``UploadPart`` is ``s3:PutObject``), a resource placeholder, the
context keys the real request carries (reuse or add a named ``Context`` constant), the expected decision
and a short why. A new placeholder or principal goes into ``matrix.Bindings`` / ``AccessMatrix``. If the
row fails because of a known policy bug, pass the gap (a constant naming the file:line to fix) as the last
argument: the test becomes ``xfail(strict=True)``, and passes unexpectedly — failing — once the policy is
fixed, so the fixer deletes the gap. A context key the evaluator ignores for the action fails the row:
the matrix never silently evaluates a request other than the one written.

Limits of the evaluator found so far: ``kms:EncryptionContext:<key>`` context keys are ignored (the
variable-key matcher only knows ``/``-separated names), so rows cannot test encryption-context
conditions; ``aws:PrincipalArn`` and friends are not derived from the principal, so ``AccessMatrix``
supplies them; EventBridge, SQS, SNS and DynamoDB are evaluated with the default same-account rules.
"""
