// Every operation the UI sends. Types come from `npm run codegen` (src/gql/), checked for drift in make test.
import { graphql } from './gql';

// ---- identity -------------------------------------------------------------------------------
export const LoginDocument = graphql(`
  mutation Login($username: String!, $password: String!) {
    login(username: $username, password: $password) {
      __typename
      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }
      ... on AccountLocked { until }
      ... on Error { message }
    }
  }
`);

export const RefreshSessionDocument = graphql(`
  mutation RefreshSession($refreshToken: String!) {
    refreshSession(refreshToken: $refreshToken) {
      __typename
      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }
      ... on Error { message }
    }
  }
`);

export const LogoutDocument = graphql(`
  mutation Logout { logout { __typename ... on Error { message } } }
`);

export const SessionStatusDocument = graphql(`
  query SessionStatus { sessionStatus { sessionId remainingSeconds warning endsAt } }
`);

export const ExtendSessionDocument = graphql(`
  mutation ExtendSession {
    extendSession { __typename ... on SessionStatus { sessionId remainingSeconds warning endsAt } ... on Error { message } }
  }
`);

export const MeDocument = graphql(`
  query Me { me { id username displayName email roles permissions timezone department lastLoginAt } }
`);

export const MySessionsDocument = graphql(`
  query MySessions { mySessions { id createdAt lastActivityAt endsAt ipAddress userAgent active current } }
`);

export const RevokeSessionDocument = graphql(`
  mutation RevokeSession($id: ID!) { revokeSession(id: $id) { __typename ... on Error { message } } }
`);

export const ApiKeysDocument = graphql(`
  query ApiKeys { apiKeys { id name permissions createdAt expiresAt revokedAt } }
`);

export const CreateApiKeyDocument = graphql(`
  mutation CreateApiKey($name: String!, $permissions: [String!]!, $expiresInDays: Int!) {
    createApiKey(name: $name, permissions: $permissions, expiresInDays: $expiresInDays) {
      __typename ... on ApiKeyCreated { secret apiKey { id name } } ... on Error { message }
    }
  }
`);

export const RevokeApiKeyDocument = graphql(`
  mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { __typename ... on Error { message } } }
`);

export const ChangePasswordDocument = graphql(`
  mutation ChangePassword($current: String!, $next: String!) {
    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on Error { message } }
  }
`);

// ---- users and roles ------------------------------------------------------------------------
export const UsersDocument = graphql(`
  query Users($first: Int, $after: String, $filter: UserFilter) {
    users(first: $first, after: $after, filter: $filter) {
      edges { node { id username displayName email roles isActive lastLoginAt createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const RolesDocument = graphql(`
  query Roles { roles { name description permissions isSystem } }
`);

export const CreateUserDocument = graphql(`
  mutation CreateUser($input: CreateUserInput!) {
    createUser(input: $input) { __typename ... on UserCreated { user { id username } } ... on Error { message } }
  }
`);

export const SetUserActiveDocument = graphql(`
  mutation SetUserActive($id: ID!, $active: Boolean!) {
    setUserActive(id: $id, active: $active) { __typename ... on Error { message } }
  }
`);

export const SetUserRolesDocument = graphql(`
  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {
    setUserRoles(userId: $userId, roles: $roles) { __typename ... on Error { message } }
  }
`);

// ---- targets --------------------------------------------------------------------------------
export const TargetsDocument = graphql(`
  query Targets($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {
    targets(first: $first, after: $after, filter: $filter, sort: $sort) {
      totalCount
      edges { node { id serial name osType environment status healthStatus tags
        communicationMethods { id type host port isPrimary } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const TargetDocument = graphql(`
  query Target($id: ID!) {
    target(id: $id) {
      id serial name description osType environment status healthStatus tags location
      communicationMethods { id type host port isPrimary isActive credential { id type username }
        hostKey { fingerprint trustedBy updatedAt } }
    }
    healthHistory(targetId: $id, first: 10) {
      edges { node { id ok message healthStatus trigger latencyMs checkedAt } }
    }
  }
`);

export const TargetStatisticsDocument = graphql(`
  query TargetStatistics { targetStatistics { total byHealth { key count } byEnvironment { key count } } }
`);

export const CreateTargetDocument = graphql(`
  mutation CreateTarget($input: CreateTargetInput!) {
    createTarget(input: $input) {
      __typename
      ... on TargetCreated { target { id serial name communicationMethods { id } } }
      ... on ValidationFailed { field }
      ... on Error { message }
    }
  }
`);

export const UpdateTargetDocument = graphql(`
  mutation UpdateTarget($id: ID!, $input: UpdateTargetInput!) {
    updateTarget(id: $id, input: $input) { __typename ... on TargetUpdated { target { id name } } ... on Error { message } }
  }
`);

export const BulkUpdateTargetsDocument = graphql(`
  mutation BulkUpdateTargets($ids: [ID!]!, $input: UpdateTargetInput!) {
    bulkUpdateTargets(targetIds: $ids, input: $input) { __typename ... on Error { message } }
  }
`);

export const DeleteTargetDocument = graphql(`
  mutation DeleteTarget($id: ID!) { deleteTarget(id: $id) { __typename ... on Error { message } } }
`);

export const TestConnectionDocument = graphql(`
  mutation TestConnection($targetId: ID!) {
    testConnection(targetId: $targetId) { ok latencyMs message method methodId }
  }
`);

export const BulkTestConnectionsDocument = graphql(`
  mutation BulkTestConnections($ids: [ID!]!) {
    bulkTestConnections(targetIds: $ids) { targetId healthStatus result { ok message } }
  }
`);

export const AcceptHostKeyDocument = graphql(`
  mutation AcceptHostKey($targetId: ID!, $methodId: ID!) {
    acceptHostKey(targetId: $targetId, methodId: $methodId) {
      __typename ... on HostKeyAccepted { hostKey { fingerprint } } ... on Error { message }
    }
  }
`);

// ---- jobs -----------------------------------------------------------------------------------
export const JobsDocument = graphql(`
  query Jobs($first: Int, $after: String, $filter: JobFilter) {
    jobs(first: $first, after: $after, filter: $filter) {
      edges { node { id serial name description version targetIds nextRunAt
        steps { order name type }
        executions(first: 1) { edges { node { id number status createdAt } } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const JobDocument = graphql(`
  query Job($id: ID!) {
    job(id: $id) {
      id serial name description version targetIds
      targetSelector { tags osTypes environments }
      policy { maxParallel timeoutSeconds retries concurrency }
      parameters { name type required default choices description }
      steps { order name type command timeoutSeconds continueOnError workingDirectory
        script { interpreter body arguments } transfer { direction source destination content mode } }
      targets { id name serial }
      schedules { id name enabled nextFireAt }
      nextRunAt
    }
  }
`);

export const CreateJobDocument = graphql(`
  mutation CreateJob($input: CreateJobInput!) {
    createJob(input: $input) {
      __typename
      ... on JobCreated { job { id serial name } }
      ... on UnknownTargets { targetIds }
      ... on ValidationFailed { field }
      ... on Error { message }
    }
  }
`);

export const UpdateJobDocument = graphql(`
  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {
    updateJob(id: $id, input: $input) {
      __typename ... on JobUpdated { job { id version } } ... on ValidationFailed { field } ... on Error { message }
    }
  }
`);

export const ValidateJobDocument = graphql(`
  query ValidateJob($input: CreateJobInput!) {
    validateJob(input: $input) {
      __typename
      ... on JobValid { targetIds dangerous { stepName rule reason match } }
      ... on ValidationFailed { field }
      ... on Error { message }
    }
  }
`);

export const JobPlanDocument = graphql(`
  query JobPlan($jobId: ID!, $parameters: JSON, $targetIds: [ID!]) {
    jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds) {
      __typename
      ... on JobPlan { version targetIds parameters steps { order name type command }
        dangerous { stepName rule reason match } }
      ... on Error { message }
    }
  }
`);

export const RunJobDocument = graphql(`
  mutation RunJob($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $confirmDangerous: Boolean, $idempotencyKey: String) {
    runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, confirmDangerous: $confirmDangerous,
           idempotencyKey: $idempotencyKey) {
      __typename
      ... on ExecutionStarted { execution { id number status } }
      ... on ExecutionQueued { execution { id number status } }
      ... on DangerousCommandBlocked { findings { stepName rule reason match } }
      ... on Error { message }
    }
  }
`);

// ---- executions -----------------------------------------------------------------------------
export const ExecutionsDocument = graphql(`
  query Executions($first: Int, $after: String, $filter: ExecutionFilter) {
    executions(first: $first, after: $after, filter: $filter) {
      edges { node { id number status jobId jobName createdAt startedAt finishedAt
        totalTargets succeededTargets failedTargets cancelledTargets requestedBy } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const ExecutionDocument = graphql(`
  query Execution($id: ID!) {
    execution(id: $id) {
      id number status message jobId jobName jobVersion createdAt startedAt finishedAt lastSeq
      totalTargets succeededTargets failedTargets cancelledTargets cancelRequested retryOf parameters
      steps { name }
      targetRuns(first: 1000) { targetId targetName host status exitCode message }
    }
  }
`);

export const CancelExecutionDocument = graphql(`
  mutation CancelExecution($id: ID!) {
    cancelExecution(id: $id) { __typename ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } }
  }
`);

export const RetryExecutionDocument = graphql(`
  mutation RetryExecution($id: ID!, $confirmDangerous: Boolean) {
    retryExecution(id: $id, onlyFailed: true, confirmDangerous: $confirmDangerous) {
      __typename
      ... on ExecutionStarted { execution { id number } }
      ... on ExecutionQueued { execution { id number } }
      ... on Error { message }
    }
  }
`);

export const ExecutionEventBatchesDocument = graphql(`
  subscription ExecutionEventBatches($executionId: ID!, $afterSeq: Int, $maxBatch: Int!) {
    executionEventBatches(executionId: $executionId, afterSeq: $afterSeq, maxBatch: $maxBatch) {
      lastSeq finished
      events { seq type targetId stepIndex stepName data exitCode status at }
    }
  }
`);

export const ExecutionEventsDocument = graphql(`
  subscription ExecutionEvents($executionId: ID!, $afterSeq: Int) {
    executionEvents(executionId: $executionId, afterSeq: $afterSeq) {
      seq type targetId stepIndex stepName data exitCode status at
    }
  }
`);

// ---- schedules ------------------------------------------------------------------------------
export const SchedulesDocument = graphql(`
  query Schedules($first: Int, $after: String, $filter: ScheduleFilter) {
    schedules(first: $first, after: $after, filter: $filter) {
      edges { node { id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt
        fireCount description job { id name } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const ScheduleDocument = graphql(`
  query Schedule($id: ID!) {
    schedule(id: $id) {
      id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt fireCount description
      misfirePolicy overlapPolicy dstGapPolicy dstOverlapPolicy maxRuns endAt
      job { id name } owner { id username }
      history(first: 50) { edges { node { id scheduledFor firedAt outcome reason lateMs execution { id number status } } } }
    }
  }
`);

export const PreviewScheduleDocument = graphql(`
  query PreviewSchedule($input: ScheduleInput!, $count: Int) {
    previewSchedule(input: $input, count: $count) { description nextFireTimes notes }
  }
`);

export const UpcomingFiresDocument = graphql(`
  query UpcomingFires($from: DateTime!, $to: DateTime!) {
    upcomingFires(from: $from, to: $to) { fireAt schedule { id name job { id name } } }
  }
`);

export const CreateScheduleDocument = graphql(`
  mutation CreateSchedule($input: ScheduleInput!) {
    createSchedule(input: $input) { __typename ... on ScheduleCreated { schedule { id } } ... on Error { message } }
  }
`);

export const PauseScheduleDocument = graphql(`
  mutation PauseSchedule($id: ID!) { pauseSchedule(id: $id) { __typename ... on Error { message } } }
`);

export const ResumeScheduleDocument = graphql(`
  mutation ResumeSchedule($id: ID!) { resumeSchedule(id: $id) { __typename ... on Error { message } } }
`);

export const RunScheduleNowDocument = graphql(`
  mutation RunScheduleNow($id: ID!) {
    runScheduleNow(id: $id) {
      __typename ... on ScheduleFireStarted { fire { id execution { id } } } ... on Error { message }
    }
  }
`);

export const DeleteScheduleDocument = graphql(`
  mutation DeleteSchedule($id: ID!) { deleteSchedule(id: $id) { __typename ... on Error { message } } }
`);
