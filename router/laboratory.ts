// The Laboratory page at /graphql opens with the README's "First five operations" saved in a
// collection (left pane, "Collections"): log in, create a target, create a job, run it, watch it.
// Passed as `graphiql.defaultCollections` (@graphql-hive/render-laboratory's option); keep in step
// with README.md (tests/test_router_laboratory.py checks both against the router's schema).
// The page passes this list on every load (props win over the browser's saved collections).

const CREATED_AT = '2026-12-01T00:00:00.000Z';
const AUTH_HEADERS = JSON.stringify({ Authorization: 'Bearer <accessToken from 1. Log in>' }, null, 2);

interface ExampleOperation {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  query: string;
  variables: string;
  headers: string;
  extensions: string;
}

function op(id: string, name: string, description: string, query: string, variables: object, auth = true): ExampleOperation {
  return {
    id: `opsc-first-five-${id}`,
    name,
    description,
    createdAt: CREATED_AT,
    query: query.trim() + '\n',
    variables: JSON.stringify(variables, null, 2),
    headers: auth ? AUTH_HEADERS : '{}',
    extensions: '{}',
  };
}

export const firstFiveOperations: ExampleOperation[] = [
  op(
    'login',
    '1. Log in',
    "The bootstrap admin; the password is $OPSC_ADMIN_PASSWORD (or the one `make dev` printed on first start). Copy accessToken into the other operations' headers.",
    `
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    ... on LoginSuccess { accessToken }
    ... on Error { message }
  }
}`,
    { username: 'admin', password: '' },
    false,
  ),
  op(
    'create-target',
    '2. Create a target',
    'A Linux machine reached over SSH with a password credential.',
    `
mutation CreateTarget($input: CreateTargetInput!) {
  createTarget(input: $input) {
    ... on TargetCreated { target { id } }
    ... on Error { message }
  }
}`,
    {
      input: {
        name: 'web-1',
        osType: 'linux',
        methods: [
          { type: 'SSH', host: '127.0.0.1', port: 22, credential: { type: 'PASSWORD', username: 'me', password: '' } },
        ],
      },
    },
  ),
  op(
    'create-job',
    '3. Create a job',
    'One command step on the target from 2.',
    `
mutation CreateJob($input: CreateJobInput!) {
  createJob(input: $input) {
    ... on JobCreated { job { id } }
    ... on Error { message }
  }
}`,
    { input: { name: 'hello', targetIds: ['<target id>'], steps: [{ name: 'hi', command: 'echo hello; hostname' }] } },
  ),
  op(
    'run-job',
    '4. Run the job',
    'Starts an execution of the job from 3.',
    `
mutation RunJob($jobId: ID!) {
  runJob(jobId: $jobId) {
    ... on ExecutionStarted { execution { id } }
    ... on Error { message }
  }
}`,
    { jobId: '<job id>' },
  ),
  op(
    'execution-events',
    '5. Watch the execution',
    'Its events as they happen (subscription over WebSocket).',
    `
subscription ExecutionEvents($executionId: ID!) {
  executionEvents(executionId: $executionId) { seq type targetId data exitCode }
}`,
    { executionId: '<execution id>' },
  ),
  op(
    'execution-event-batches',
    '5b. Watch many targets',
    'The same events, one message per persisted batch.',
    `
subscription ExecutionEventBatches($executionId: ID!) {
  executionEventBatches(executionId: $executionId) { lastSeq finished events { seq type targetId data } }
}`,
    { executionId: '<execution id>' },
  ),
];

export const defaultCollections = [
  {
    id: 'opsc-first-five',
    name: 'OpsConductor: first five operations',
    description: 'README.md, "First five operations": log in, create a target and a job, run it, watch it.',
    createdAt: CREATED_AT,
    operations: firstFiveOperations,
  },
];
