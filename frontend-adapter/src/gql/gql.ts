/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  mutation Login($username: String!, $password: String!) {\n    login(username: $username, password: $password) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on AccountLocked { until }\n      ... on Error { message }\n    }\n  }\n": typeof types.LoginDocument,
    "\n  mutation RefreshSession($refreshToken: String!) {\n    refreshSession(refreshToken: $refreshToken) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on Error { message }\n    }\n  }\n": typeof types.RefreshSessionDocument,
    "\n  mutation Logout { logout { __typename ... on Error { message } } }\n": typeof types.LogoutDocument,
    "\n  query SessionStatus { sessionStatus { sessionId remainingSeconds warning endsAt } }\n": typeof types.SessionStatusDocument,
    "\n  mutation ExtendSession {\n    extendSession { __typename ... on SessionStatus { sessionId remainingSeconds warning endsAt } ... on Error { message } }\n  }\n": typeof types.ExtendSessionDocument,
    "\n  query Me { me { id username displayName email roles permissions timezone department lastLoginAt } }\n": typeof types.MeDocument,
    "\n  query MySessions { mySessions { id createdAt lastActivityAt endsAt ipAddress userAgent active current } }\n": typeof types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) { __typename ... on Error { message } } }\n": typeof types.RevokeSessionDocument,
    "\n  query ApiKeys { apiKeys { id name permissions createdAt expiresAt revokedAt } }\n": typeof types.ApiKeysDocument,
    "\n  mutation CreateApiKey($name: String!, $permissions: [String!]!, $expiresInDays: Int!) {\n    createApiKey(name: $name, permissions: $permissions, expiresInDays: $expiresInDays) {\n      __typename ... on ApiKeyCreated { secret apiKey { id name } } ... on Error { message }\n    }\n  }\n": typeof types.CreateApiKeyDocument,
    "\n  mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { __typename ... on Error { message } } }\n": typeof types.RevokeApiKeyDocument,
    "\n  mutation ChangePassword($current: String!, $next: String!) {\n    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on Error { message } }\n  }\n": typeof types.ChangePasswordDocument,
    "\n  query Users($first: Int, $after: String, $filter: UserFilter) {\n    users(first: $first, after: $after, filter: $filter) {\n      edges { node { id username displayName email roles isActive lastLoginAt createdAt } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.UsersDocument,
    "\n  query Roles { roles { name description permissions isSystem } }\n": typeof types.RolesDocument,
    "\n  mutation CreateUser($input: CreateUserInput!) {\n    createUser(input: $input) { __typename ... on UserCreated { user { id username } } ... on Error { message } }\n  }\n": typeof types.CreateUserDocument,
    "\n  mutation SetUserActive($id: ID!, $active: Boolean!) {\n    setUserActive(id: $id, active: $active) { __typename ... on Error { message } }\n  }\n": typeof types.SetUserActiveDocument,
    "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) { __typename ... on Error { message } }\n  }\n": typeof types.SetUserRolesDocument,
    "\n  query Targets($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {\n    targets(first: $first, after: $after, filter: $filter, sort: $sort) {\n      totalCount\n      edges { node { id serial name osType environment status healthStatus tags\n        communicationMethods { id type host port isPrimary } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.TargetsDocument,
    "\n  query Target($id: ID!) {\n    target(id: $id) {\n      id serial name description osType environment status healthStatus tags location\n      communicationMethods { id type host port isPrimary isActive credential { id type username }\n        hostKey { fingerprint trustedBy updatedAt } }\n    }\n    healthHistory(targetId: $id, first: 10) {\n      edges { node { id ok message healthStatus trigger latencyMs checkedAt } }\n    }\n  }\n": typeof types.TargetDocument,
    "\n  query TargetStatistics { targetStatistics { total byHealth { key count } byEnvironment { key count } } }\n": typeof types.TargetStatisticsDocument,
    "\n  mutation CreateTarget($input: CreateTargetInput!) {\n    createTarget(input: $input) {\n      __typename\n      ... on TargetCreated { target { id serial name communicationMethods { id } } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": typeof types.CreateTargetDocument,
    "\n  mutation UpdateTarget($id: ID!, $input: UpdateTargetInput!) {\n    updateTarget(id: $id, input: $input) { __typename ... on TargetUpdated { target { id name } } ... on Error { message } }\n  }\n": typeof types.UpdateTargetDocument,
    "\n  mutation BulkUpdateTargets($ids: [ID!]!, $input: UpdateTargetInput!) {\n    bulkUpdateTargets(targetIds: $ids, input: $input) { __typename ... on Error { message } }\n  }\n": typeof types.BulkUpdateTargetsDocument,
    "\n  mutation DeleteTarget($id: ID!) { deleteTarget(id: $id) { __typename ... on Error { message } } }\n": typeof types.DeleteTargetDocument,
    "\n  mutation TestConnection($targetId: ID!) {\n    testConnection(targetId: $targetId) { ok latencyMs message method methodId }\n  }\n": typeof types.TestConnectionDocument,
    "\n  mutation BulkTestConnections($ids: [ID!]!) {\n    bulkTestConnections(targetIds: $ids) { targetId healthStatus result { ok message } }\n  }\n": typeof types.BulkTestConnectionsDocument,
    "\n  mutation AcceptHostKey($targetId: ID!, $methodId: ID!) {\n    acceptHostKey(targetId: $targetId, methodId: $methodId) {\n      __typename ... on HostKeyAccepted { hostKey { fingerprint } } ... on Error { message }\n    }\n  }\n": typeof types.AcceptHostKeyDocument,
    "\n  query Jobs($first: Int, $after: String, $filter: JobFilter) {\n    jobs(first: $first, after: $after, filter: $filter) {\n      edges { node { id serial name description version targetIds nextRunAt\n        steps { order name type }\n        executions(first: 1) { edges { node { id number status createdAt } } } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.JobsDocument,
    "\n  query Job($id: ID!) {\n    job(id: $id) {\n      id serial name description version targetIds\n      targetSelector { tags osTypes environments }\n      policy { maxParallel timeoutSeconds retries concurrency }\n      parameters { name type required default choices description }\n      steps { order name type command timeoutSeconds continueOnError workingDirectory\n        script { interpreter body arguments } transfer { direction source destination content mode } }\n      targets { id name serial }\n      schedules { id name enabled nextFireAt }\n      nextRunAt\n    }\n  }\n": typeof types.JobDocument,
    "\n  mutation CreateJob($input: CreateJobInput!) {\n    createJob(input: $input) {\n      __typename\n      ... on JobCreated { job { id serial name } }\n      ... on UnknownTargets { targetIds }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": typeof types.CreateJobDocument,
    "\n  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {\n    updateJob(id: $id, input: $input) {\n      __typename ... on JobUpdated { job { id version } } ... on ValidationFailed { field } ... on Error { message }\n    }\n  }\n": typeof types.UpdateJobDocument,
    "\n  query ValidateJob($input: CreateJobInput!) {\n    validateJob(input: $input) {\n      __typename\n      ... on JobValid { targetIds dangerous { stepName rule reason match } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": typeof types.ValidateJobDocument,
    "\n  query JobPlan($jobId: ID!, $parameters: JSON, $targetIds: [ID!]) {\n    jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds) {\n      __typename\n      ... on JobPlan { version targetIds parameters steps { order name type command }\n        dangerous { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n": typeof types.JobPlanDocument,
    "\n  mutation RunJob($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $confirmDangerous: Boolean, $idempotencyKey: String) {\n    runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, confirmDangerous: $confirmDangerous,\n           idempotencyKey: $idempotencyKey) {\n      __typename\n      ... on ExecutionStarted { execution { id number status } }\n      ... on ExecutionQueued { execution { id number status } }\n      ... on DangerousCommandBlocked { findings { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n": typeof types.RunJobDocument,
    "\n  query Executions($first: Int, $after: String, $filter: ExecutionFilter) {\n    executions(first: $first, after: $after, filter: $filter) {\n      edges { node { id number status jobId jobName createdAt startedAt finishedAt\n        totalTargets succeededTargets failedTargets cancelledTargets requestedBy } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.ExecutionsDocument,
    "\n  query Execution($id: ID!) {\n    execution(id: $id) {\n      id number status message jobId jobName jobVersion createdAt startedAt finishedAt lastSeq\n      totalTargets succeededTargets failedTargets cancelledTargets cancelRequested retryOf parameters\n      steps { name }\n      targetRuns(first: 1000) { targetId targetName host status exitCode message }\n    }\n  }\n": typeof types.ExecutionDocument,
    "\n  mutation CancelExecution($id: ID!) {\n    cancelExecution(id: $id) { __typename ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } }\n  }\n": typeof types.CancelExecutionDocument,
    "\n  mutation RetryExecution($id: ID!, $confirmDangerous: Boolean) {\n    retryExecution(id: $id, onlyFailed: true, confirmDangerous: $confirmDangerous) {\n      __typename\n      ... on ExecutionStarted { execution { id number } }\n      ... on ExecutionQueued { execution { id number } }\n      ... on Error { message }\n    }\n  }\n": typeof types.RetryExecutionDocument,
    "\n  subscription ExecutionEventBatches($executionId: ID!, $afterSeq: Int, $maxBatch: Int!) {\n    executionEventBatches(executionId: $executionId, afterSeq: $afterSeq, maxBatch: $maxBatch) {\n      lastSeq finished\n      events { seq type targetId stepIndex stepName data exitCode status at }\n    }\n  }\n": typeof types.ExecutionEventBatchesDocument,
    "\n  subscription ExecutionEvents($executionId: ID!, $afterSeq: Int) {\n    executionEvents(executionId: $executionId, afterSeq: $afterSeq) {\n      seq type targetId stepIndex stepName data exitCode status at\n    }\n  }\n": typeof types.ExecutionEventsDocument,
    "\n  query Schedules($first: Int, $after: String, $filter: ScheduleFilter) {\n    schedules(first: $first, after: $after, filter: $filter) {\n      edges { node { id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt\n        fireCount description job { id name } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.SchedulesDocument,
    "\n  query Schedule($id: ID!) {\n    schedule(id: $id) {\n      id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt fireCount description\n      misfirePolicy overlapPolicy dstGapPolicy dstOverlapPolicy maxRuns endAt\n      job { id name } owner { id username }\n      history(first: 50) { edges { node { id scheduledFor firedAt outcome reason lateMs execution { id number status } } } }\n    }\n  }\n": typeof types.ScheduleDocument,
    "\n  query PreviewSchedule($input: ScheduleInput!, $count: Int) {\n    previewSchedule(input: $input, count: $count) { description nextFireTimes notes }\n  }\n": typeof types.PreviewScheduleDocument,
    "\n  query UpcomingFires($from: DateTime!, $to: DateTime!) {\n    upcomingFires(from: $from, to: $to) { fireAt schedule { id name job { id name } } }\n  }\n": typeof types.UpcomingFiresDocument,
    "\n  mutation CreateSchedule($input: ScheduleInput!) {\n    createSchedule(input: $input) { __typename ... on ScheduleCreated { schedule { id } } ... on Error { message } }\n  }\n": typeof types.CreateScheduleDocument,
    "\n  mutation PauseSchedule($id: ID!) { pauseSchedule(id: $id) { __typename ... on Error { message } } }\n": typeof types.PauseScheduleDocument,
    "\n  mutation ResumeSchedule($id: ID!) { resumeSchedule(id: $id) { __typename ... on Error { message } } }\n": typeof types.ResumeScheduleDocument,
    "\n  mutation RunScheduleNow($id: ID!) {\n    runScheduleNow(id: $id) {\n      __typename ... on ScheduleFireStarted { fire { id execution { id } } } ... on Error { message }\n    }\n  }\n": typeof types.RunScheduleNowDocument,
    "\n  mutation DeleteSchedule($id: ID!) { deleteSchedule(id: $id) { __typename ... on Error { message } } }\n": typeof types.DeleteScheduleDocument,
};
const documents: Documents = {
    "\n  mutation Login($username: String!, $password: String!) {\n    login(username: $username, password: $password) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on AccountLocked { until }\n      ... on Error { message }\n    }\n  }\n": types.LoginDocument,
    "\n  mutation RefreshSession($refreshToken: String!) {\n    refreshSession(refreshToken: $refreshToken) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on Error { message }\n    }\n  }\n": types.RefreshSessionDocument,
    "\n  mutation Logout { logout { __typename ... on Error { message } } }\n": types.LogoutDocument,
    "\n  query SessionStatus { sessionStatus { sessionId remainingSeconds warning endsAt } }\n": types.SessionStatusDocument,
    "\n  mutation ExtendSession {\n    extendSession { __typename ... on SessionStatus { sessionId remainingSeconds warning endsAt } ... on Error { message } }\n  }\n": types.ExtendSessionDocument,
    "\n  query Me { me { id username displayName email roles permissions timezone department lastLoginAt } }\n": types.MeDocument,
    "\n  query MySessions { mySessions { id createdAt lastActivityAt endsAt ipAddress userAgent active current } }\n": types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) { __typename ... on Error { message } } }\n": types.RevokeSessionDocument,
    "\n  query ApiKeys { apiKeys { id name permissions createdAt expiresAt revokedAt } }\n": types.ApiKeysDocument,
    "\n  mutation CreateApiKey($name: String!, $permissions: [String!]!, $expiresInDays: Int!) {\n    createApiKey(name: $name, permissions: $permissions, expiresInDays: $expiresInDays) {\n      __typename ... on ApiKeyCreated { secret apiKey { id name } } ... on Error { message }\n    }\n  }\n": types.CreateApiKeyDocument,
    "\n  mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { __typename ... on Error { message } } }\n": types.RevokeApiKeyDocument,
    "\n  mutation ChangePassword($current: String!, $next: String!) {\n    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on Error { message } }\n  }\n": types.ChangePasswordDocument,
    "\n  query Users($first: Int, $after: String, $filter: UserFilter) {\n    users(first: $first, after: $after, filter: $filter) {\n      edges { node { id username displayName email roles isActive lastLoginAt createdAt } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.UsersDocument,
    "\n  query Roles { roles { name description permissions isSystem } }\n": types.RolesDocument,
    "\n  mutation CreateUser($input: CreateUserInput!) {\n    createUser(input: $input) { __typename ... on UserCreated { user { id username } } ... on Error { message } }\n  }\n": types.CreateUserDocument,
    "\n  mutation SetUserActive($id: ID!, $active: Boolean!) {\n    setUserActive(id: $id, active: $active) { __typename ... on Error { message } }\n  }\n": types.SetUserActiveDocument,
    "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) { __typename ... on Error { message } }\n  }\n": types.SetUserRolesDocument,
    "\n  query Targets($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {\n    targets(first: $first, after: $after, filter: $filter, sort: $sort) {\n      totalCount\n      edges { node { id serial name osType environment status healthStatus tags\n        communicationMethods { id type host port isPrimary } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.TargetsDocument,
    "\n  query Target($id: ID!) {\n    target(id: $id) {\n      id serial name description osType environment status healthStatus tags location\n      communicationMethods { id type host port isPrimary isActive credential { id type username }\n        hostKey { fingerprint trustedBy updatedAt } }\n    }\n    healthHistory(targetId: $id, first: 10) {\n      edges { node { id ok message healthStatus trigger latencyMs checkedAt } }\n    }\n  }\n": types.TargetDocument,
    "\n  query TargetStatistics { targetStatistics { total byHealth { key count } byEnvironment { key count } } }\n": types.TargetStatisticsDocument,
    "\n  mutation CreateTarget($input: CreateTargetInput!) {\n    createTarget(input: $input) {\n      __typename\n      ... on TargetCreated { target { id serial name communicationMethods { id } } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": types.CreateTargetDocument,
    "\n  mutation UpdateTarget($id: ID!, $input: UpdateTargetInput!) {\n    updateTarget(id: $id, input: $input) { __typename ... on TargetUpdated { target { id name } } ... on Error { message } }\n  }\n": types.UpdateTargetDocument,
    "\n  mutation BulkUpdateTargets($ids: [ID!]!, $input: UpdateTargetInput!) {\n    bulkUpdateTargets(targetIds: $ids, input: $input) { __typename ... on Error { message } }\n  }\n": types.BulkUpdateTargetsDocument,
    "\n  mutation DeleteTarget($id: ID!) { deleteTarget(id: $id) { __typename ... on Error { message } } }\n": types.DeleteTargetDocument,
    "\n  mutation TestConnection($targetId: ID!) {\n    testConnection(targetId: $targetId) { ok latencyMs message method methodId }\n  }\n": types.TestConnectionDocument,
    "\n  mutation BulkTestConnections($ids: [ID!]!) {\n    bulkTestConnections(targetIds: $ids) { targetId healthStatus result { ok message } }\n  }\n": types.BulkTestConnectionsDocument,
    "\n  mutation AcceptHostKey($targetId: ID!, $methodId: ID!) {\n    acceptHostKey(targetId: $targetId, methodId: $methodId) {\n      __typename ... on HostKeyAccepted { hostKey { fingerprint } } ... on Error { message }\n    }\n  }\n": types.AcceptHostKeyDocument,
    "\n  query Jobs($first: Int, $after: String, $filter: JobFilter) {\n    jobs(first: $first, after: $after, filter: $filter) {\n      edges { node { id serial name description version targetIds nextRunAt\n        steps { order name type }\n        executions(first: 1) { edges { node { id number status createdAt } } } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.JobsDocument,
    "\n  query Job($id: ID!) {\n    job(id: $id) {\n      id serial name description version targetIds\n      targetSelector { tags osTypes environments }\n      policy { maxParallel timeoutSeconds retries concurrency }\n      parameters { name type required default choices description }\n      steps { order name type command timeoutSeconds continueOnError workingDirectory\n        script { interpreter body arguments } transfer { direction source destination content mode } }\n      targets { id name serial }\n      schedules { id name enabled nextFireAt }\n      nextRunAt\n    }\n  }\n": types.JobDocument,
    "\n  mutation CreateJob($input: CreateJobInput!) {\n    createJob(input: $input) {\n      __typename\n      ... on JobCreated { job { id serial name } }\n      ... on UnknownTargets { targetIds }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": types.CreateJobDocument,
    "\n  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {\n    updateJob(id: $id, input: $input) {\n      __typename ... on JobUpdated { job { id version } } ... on ValidationFailed { field } ... on Error { message }\n    }\n  }\n": types.UpdateJobDocument,
    "\n  query ValidateJob($input: CreateJobInput!) {\n    validateJob(input: $input) {\n      __typename\n      ... on JobValid { targetIds dangerous { stepName rule reason match } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n": types.ValidateJobDocument,
    "\n  query JobPlan($jobId: ID!, $parameters: JSON, $targetIds: [ID!]) {\n    jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds) {\n      __typename\n      ... on JobPlan { version targetIds parameters steps { order name type command }\n        dangerous { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n": types.JobPlanDocument,
    "\n  mutation RunJob($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $confirmDangerous: Boolean, $idempotencyKey: String) {\n    runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, confirmDangerous: $confirmDangerous,\n           idempotencyKey: $idempotencyKey) {\n      __typename\n      ... on ExecutionStarted { execution { id number status } }\n      ... on ExecutionQueued { execution { id number status } }\n      ... on DangerousCommandBlocked { findings { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n": types.RunJobDocument,
    "\n  query Executions($first: Int, $after: String, $filter: ExecutionFilter) {\n    executions(first: $first, after: $after, filter: $filter) {\n      edges { node { id number status jobId jobName createdAt startedAt finishedAt\n        totalTargets succeededTargets failedTargets cancelledTargets requestedBy } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.ExecutionsDocument,
    "\n  query Execution($id: ID!) {\n    execution(id: $id) {\n      id number status message jobId jobName jobVersion createdAt startedAt finishedAt lastSeq\n      totalTargets succeededTargets failedTargets cancelledTargets cancelRequested retryOf parameters\n      steps { name }\n      targetRuns(first: 1000) { targetId targetName host status exitCode message }\n    }\n  }\n": types.ExecutionDocument,
    "\n  mutation CancelExecution($id: ID!) {\n    cancelExecution(id: $id) { __typename ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } }\n  }\n": types.CancelExecutionDocument,
    "\n  mutation RetryExecution($id: ID!, $confirmDangerous: Boolean) {\n    retryExecution(id: $id, onlyFailed: true, confirmDangerous: $confirmDangerous) {\n      __typename\n      ... on ExecutionStarted { execution { id number } }\n      ... on ExecutionQueued { execution { id number } }\n      ... on Error { message }\n    }\n  }\n": types.RetryExecutionDocument,
    "\n  subscription ExecutionEventBatches($executionId: ID!, $afterSeq: Int, $maxBatch: Int!) {\n    executionEventBatches(executionId: $executionId, afterSeq: $afterSeq, maxBatch: $maxBatch) {\n      lastSeq finished\n      events { seq type targetId stepIndex stepName data exitCode status at }\n    }\n  }\n": types.ExecutionEventBatchesDocument,
    "\n  subscription ExecutionEvents($executionId: ID!, $afterSeq: Int) {\n    executionEvents(executionId: $executionId, afterSeq: $afterSeq) {\n      seq type targetId stepIndex stepName data exitCode status at\n    }\n  }\n": types.ExecutionEventsDocument,
    "\n  query Schedules($first: Int, $after: String, $filter: ScheduleFilter) {\n    schedules(first: $first, after: $after, filter: $filter) {\n      edges { node { id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt\n        fireCount description job { id name } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.SchedulesDocument,
    "\n  query Schedule($id: ID!) {\n    schedule(id: $id) {\n      id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt fireCount description\n      misfirePolicy overlapPolicy dstGapPolicy dstOverlapPolicy maxRuns endAt\n      job { id name } owner { id username }\n      history(first: 50) { edges { node { id scheduledFor firedAt outcome reason lateMs execution { id number status } } } }\n    }\n  }\n": types.ScheduleDocument,
    "\n  query PreviewSchedule($input: ScheduleInput!, $count: Int) {\n    previewSchedule(input: $input, count: $count) { description nextFireTimes notes }\n  }\n": types.PreviewScheduleDocument,
    "\n  query UpcomingFires($from: DateTime!, $to: DateTime!) {\n    upcomingFires(from: $from, to: $to) { fireAt schedule { id name job { id name } } }\n  }\n": types.UpcomingFiresDocument,
    "\n  mutation CreateSchedule($input: ScheduleInput!) {\n    createSchedule(input: $input) { __typename ... on ScheduleCreated { schedule { id } } ... on Error { message } }\n  }\n": types.CreateScheduleDocument,
    "\n  mutation PauseSchedule($id: ID!) { pauseSchedule(id: $id) { __typename ... on Error { message } } }\n": types.PauseScheduleDocument,
    "\n  mutation ResumeSchedule($id: ID!) { resumeSchedule(id: $id) { __typename ... on Error { message } } }\n": types.ResumeScheduleDocument,
    "\n  mutation RunScheduleNow($id: ID!) {\n    runScheduleNow(id: $id) {\n      __typename ... on ScheduleFireStarted { fire { id execution { id } } } ... on Error { message }\n    }\n  }\n": types.RunScheduleNowDocument,
    "\n  mutation DeleteSchedule($id: ID!) { deleteSchedule(id: $id) { __typename ... on Error { message } } }\n": types.DeleteScheduleDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Login($username: String!, $password: String!) {\n    login(username: $username, password: $password) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on AccountLocked { until }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation Login($username: String!, $password: String!) {\n    login(username: $username, password: $password) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on AccountLocked { until }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RefreshSession($refreshToken: String!) {\n    refreshSession(refreshToken: $refreshToken) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation RefreshSession($refreshToken: String!) {\n    refreshSession(refreshToken: $refreshToken) {\n      __typename\n      ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Logout { logout { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation Logout { logout { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query SessionStatus { sessionStatus { sessionId remainingSeconds warning endsAt } }\n"): (typeof documents)["\n  query SessionStatus { sessionStatus { sessionId remainingSeconds warning endsAt } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ExtendSession {\n    extendSession { __typename ... on SessionStatus { sessionId remainingSeconds warning endsAt } ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation ExtendSession {\n    extendSession { __typename ... on SessionStatus { sessionId remainingSeconds warning endsAt } ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me { me { id username displayName email roles permissions timezone department lastLoginAt } }\n"): (typeof documents)["\n  query Me { me { id username displayName email roles permissions timezone department lastLoginAt } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query MySessions { mySessions { id createdAt lastActivityAt endsAt ipAddress userAgent active current } }\n"): (typeof documents)["\n  query MySessions { mySessions { id createdAt lastActivityAt endsAt ipAddress userAgent active current } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation RevokeSession($id: ID!) { revokeSession(id: $id) { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ApiKeys { apiKeys { id name permissions createdAt expiresAt revokedAt } }\n"): (typeof documents)["\n  query ApiKeys { apiKeys { id name permissions createdAt expiresAt revokedAt } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateApiKey($name: String!, $permissions: [String!]!, $expiresInDays: Int!) {\n    createApiKey(name: $name, permissions: $permissions, expiresInDays: $expiresInDays) {\n      __typename ... on ApiKeyCreated { secret apiKey { id name } } ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateApiKey($name: String!, $permissions: [String!]!, $expiresInDays: Int!) {\n    createApiKey(name: $name, permissions: $permissions, expiresInDays: $expiresInDays) {\n      __typename ... on ApiKeyCreated { secret apiKey { id name } } ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation RevokeApiKey($id: ID!) { revokeApiKey(id: $id) { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ChangePassword($current: String!, $next: String!) {\n    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation ChangePassword($current: String!, $next: String!) {\n    changePassword(currentPassword: $current, newPassword: $next) { __typename ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Users($first: Int, $after: String, $filter: UserFilter) {\n    users(first: $first, after: $after, filter: $filter) {\n      edges { node { id username displayName email roles isActive lastLoginAt createdAt } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Users($first: Int, $after: String, $filter: UserFilter) {\n    users(first: $first, after: $after, filter: $filter) {\n      edges { node { id username displayName email roles isActive lastLoginAt createdAt } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Roles { roles { name description permissions isSystem } }\n"): (typeof documents)["\n  query Roles { roles { name description permissions isSystem } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateUser($input: CreateUserInput!) {\n    createUser(input: $input) { __typename ... on UserCreated { user { id username } } ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation CreateUser($input: CreateUserInput!) {\n    createUser(input: $input) { __typename ... on UserCreated { user { id username } } ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetUserActive($id: ID!, $active: Boolean!) {\n    setUserActive(id: $id, active: $active) { __typename ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation SetUserActive($id: ID!, $active: Boolean!) {\n    setUserActive(id: $id, active: $active) { __typename ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) { __typename ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation SetUserRoles($userId: ID!, $roles: [String!]!) {\n    setUserRoles(userId: $userId, roles: $roles) { __typename ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Targets($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {\n    targets(first: $first, after: $after, filter: $filter, sort: $sort) {\n      totalCount\n      edges { node { id serial name osType environment status healthStatus tags\n        communicationMethods { id type host port isPrimary } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Targets($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {\n    targets(first: $first, after: $after, filter: $filter, sort: $sort) {\n      totalCount\n      edges { node { id serial name osType environment status healthStatus tags\n        communicationMethods { id type host port isPrimary } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Target($id: ID!) {\n    target(id: $id) {\n      id serial name description osType environment status healthStatus tags location\n      communicationMethods { id type host port isPrimary isActive credential { id type username }\n        hostKey { fingerprint trustedBy updatedAt } }\n    }\n    healthHistory(targetId: $id, first: 10) {\n      edges { node { id ok message healthStatus trigger latencyMs checkedAt } }\n    }\n  }\n"): (typeof documents)["\n  query Target($id: ID!) {\n    target(id: $id) {\n      id serial name description osType environment status healthStatus tags location\n      communicationMethods { id type host port isPrimary isActive credential { id type username }\n        hostKey { fingerprint trustedBy updatedAt } }\n    }\n    healthHistory(targetId: $id, first: 10) {\n      edges { node { id ok message healthStatus trigger latencyMs checkedAt } }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query TargetStatistics { targetStatistics { total byHealth { key count } byEnvironment { key count } } }\n"): (typeof documents)["\n  query TargetStatistics { targetStatistics { total byHealth { key count } byEnvironment { key count } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateTarget($input: CreateTargetInput!) {\n    createTarget(input: $input) {\n      __typename\n      ... on TargetCreated { target { id serial name communicationMethods { id } } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateTarget($input: CreateTargetInput!) {\n    createTarget(input: $input) {\n      __typename\n      ... on TargetCreated { target { id serial name communicationMethods { id } } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateTarget($id: ID!, $input: UpdateTargetInput!) {\n    updateTarget(id: $id, input: $input) { __typename ... on TargetUpdated { target { id name } } ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation UpdateTarget($id: ID!, $input: UpdateTargetInput!) {\n    updateTarget(id: $id, input: $input) { __typename ... on TargetUpdated { target { id name } } ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BulkUpdateTargets($ids: [ID!]!, $input: UpdateTargetInput!) {\n    bulkUpdateTargets(targetIds: $ids, input: $input) { __typename ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation BulkUpdateTargets($ids: [ID!]!, $input: UpdateTargetInput!) {\n    bulkUpdateTargets(targetIds: $ids, input: $input) { __typename ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteTarget($id: ID!) { deleteTarget(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation DeleteTarget($id: ID!) { deleteTarget(id: $id) { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation TestConnection($targetId: ID!) {\n    testConnection(targetId: $targetId) { ok latencyMs message method methodId }\n  }\n"): (typeof documents)["\n  mutation TestConnection($targetId: ID!) {\n    testConnection(targetId: $targetId) { ok latencyMs message method methodId }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation BulkTestConnections($ids: [ID!]!) {\n    bulkTestConnections(targetIds: $ids) { targetId healthStatus result { ok message } }\n  }\n"): (typeof documents)["\n  mutation BulkTestConnections($ids: [ID!]!) {\n    bulkTestConnections(targetIds: $ids) { targetId healthStatus result { ok message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AcceptHostKey($targetId: ID!, $methodId: ID!) {\n    acceptHostKey(targetId: $targetId, methodId: $methodId) {\n      __typename ... on HostKeyAccepted { hostKey { fingerprint } } ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation AcceptHostKey($targetId: ID!, $methodId: ID!) {\n    acceptHostKey(targetId: $targetId, methodId: $methodId) {\n      __typename ... on HostKeyAccepted { hostKey { fingerprint } } ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Jobs($first: Int, $after: String, $filter: JobFilter) {\n    jobs(first: $first, after: $after, filter: $filter) {\n      edges { node { id serial name description version targetIds nextRunAt\n        steps { order name type }\n        executions(first: 1) { edges { node { id number status createdAt } } } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Jobs($first: Int, $after: String, $filter: JobFilter) {\n    jobs(first: $first, after: $after, filter: $filter) {\n      edges { node { id serial name description version targetIds nextRunAt\n        steps { order name type }\n        executions(first: 1) { edges { node { id number status createdAt } } } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Job($id: ID!) {\n    job(id: $id) {\n      id serial name description version targetIds\n      targetSelector { tags osTypes environments }\n      policy { maxParallel timeoutSeconds retries concurrency }\n      parameters { name type required default choices description }\n      steps { order name type command timeoutSeconds continueOnError workingDirectory\n        script { interpreter body arguments } transfer { direction source destination content mode } }\n      targets { id name serial }\n      schedules { id name enabled nextFireAt }\n      nextRunAt\n    }\n  }\n"): (typeof documents)["\n  query Job($id: ID!) {\n    job(id: $id) {\n      id serial name description version targetIds\n      targetSelector { tags osTypes environments }\n      policy { maxParallel timeoutSeconds retries concurrency }\n      parameters { name type required default choices description }\n      steps { order name type command timeoutSeconds continueOnError workingDirectory\n        script { interpreter body arguments } transfer { direction source destination content mode } }\n      targets { id name serial }\n      schedules { id name enabled nextFireAt }\n      nextRunAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateJob($input: CreateJobInput!) {\n    createJob(input: $input) {\n      __typename\n      ... on JobCreated { job { id serial name } }\n      ... on UnknownTargets { targetIds }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateJob($input: CreateJobInput!) {\n    createJob(input: $input) {\n      __typename\n      ... on JobCreated { job { id serial name } }\n      ... on UnknownTargets { targetIds }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {\n    updateJob(id: $id, input: $input) {\n      __typename ... on JobUpdated { job { id version } } ... on ValidationFailed { field } ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {\n    updateJob(id: $id, input: $input) {\n      __typename ... on JobUpdated { job { id version } } ... on ValidationFailed { field } ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ValidateJob($input: CreateJobInput!) {\n    validateJob(input: $input) {\n      __typename\n      ... on JobValid { targetIds dangerous { stepName rule reason match } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  query ValidateJob($input: CreateJobInput!) {\n    validateJob(input: $input) {\n      __typename\n      ... on JobValid { targetIds dangerous { stepName rule reason match } }\n      ... on ValidationFailed { field }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query JobPlan($jobId: ID!, $parameters: JSON, $targetIds: [ID!]) {\n    jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds) {\n      __typename\n      ... on JobPlan { version targetIds parameters steps { order name type command }\n        dangerous { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  query JobPlan($jobId: ID!, $parameters: JSON, $targetIds: [ID!]) {\n    jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds) {\n      __typename\n      ... on JobPlan { version targetIds parameters steps { order name type command }\n        dangerous { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RunJob($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $confirmDangerous: Boolean, $idempotencyKey: String) {\n    runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, confirmDangerous: $confirmDangerous,\n           idempotencyKey: $idempotencyKey) {\n      __typename\n      ... on ExecutionStarted { execution { id number status } }\n      ... on ExecutionQueued { execution { id number status } }\n      ... on DangerousCommandBlocked { findings { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation RunJob($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $confirmDangerous: Boolean, $idempotencyKey: String) {\n    runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, confirmDangerous: $confirmDangerous,\n           idempotencyKey: $idempotencyKey) {\n      __typename\n      ... on ExecutionStarted { execution { id number status } }\n      ... on ExecutionQueued { execution { id number status } }\n      ... on DangerousCommandBlocked { findings { stepName rule reason match } }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Executions($first: Int, $after: String, $filter: ExecutionFilter) {\n    executions(first: $first, after: $after, filter: $filter) {\n      edges { node { id number status jobId jobName createdAt startedAt finishedAt\n        totalTargets succeededTargets failedTargets cancelledTargets requestedBy } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Executions($first: Int, $after: String, $filter: ExecutionFilter) {\n    executions(first: $first, after: $after, filter: $filter) {\n      edges { node { id number status jobId jobName createdAt startedAt finishedAt\n        totalTargets succeededTargets failedTargets cancelledTargets requestedBy } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Execution($id: ID!) {\n    execution(id: $id) {\n      id number status message jobId jobName jobVersion createdAt startedAt finishedAt lastSeq\n      totalTargets succeededTargets failedTargets cancelledTargets cancelRequested retryOf parameters\n      steps { name }\n      targetRuns(first: 1000) { targetId targetName host status exitCode message }\n    }\n  }\n"): (typeof documents)["\n  query Execution($id: ID!) {\n    execution(id: $id) {\n      id number status message jobId jobName jobVersion createdAt startedAt finishedAt lastSeq\n      totalTargets succeededTargets failedTargets cancelledTargets cancelRequested retryOf parameters\n      steps { name }\n      targetRuns(first: 1000) { targetId targetName host status exitCode message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelExecution($id: ID!) {\n    cancelExecution(id: $id) { __typename ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation CancelExecution($id: ID!) {\n    cancelExecution(id: $id) { __typename ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RetryExecution($id: ID!, $confirmDangerous: Boolean) {\n    retryExecution(id: $id, onlyFailed: true, confirmDangerous: $confirmDangerous) {\n      __typename\n      ... on ExecutionStarted { execution { id number } }\n      ... on ExecutionQueued { execution { id number } }\n      ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation RetryExecution($id: ID!, $confirmDangerous: Boolean) {\n    retryExecution(id: $id, onlyFailed: true, confirmDangerous: $confirmDangerous) {\n      __typename\n      ... on ExecutionStarted { execution { id number } }\n      ... on ExecutionQueued { execution { id number } }\n      ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ExecutionEventBatches($executionId: ID!, $afterSeq: Int, $maxBatch: Int!) {\n    executionEventBatches(executionId: $executionId, afterSeq: $afterSeq, maxBatch: $maxBatch) {\n      lastSeq finished\n      events { seq type targetId stepIndex stepName data exitCode status at }\n    }\n  }\n"): (typeof documents)["\n  subscription ExecutionEventBatches($executionId: ID!, $afterSeq: Int, $maxBatch: Int!) {\n    executionEventBatches(executionId: $executionId, afterSeq: $afterSeq, maxBatch: $maxBatch) {\n      lastSeq finished\n      events { seq type targetId stepIndex stepName data exitCode status at }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ExecutionEvents($executionId: ID!, $afterSeq: Int) {\n    executionEvents(executionId: $executionId, afterSeq: $afterSeq) {\n      seq type targetId stepIndex stepName data exitCode status at\n    }\n  }\n"): (typeof documents)["\n  subscription ExecutionEvents($executionId: ID!, $afterSeq: Int) {\n    executionEvents(executionId: $executionId, afterSeq: $afterSeq) {\n      seq type targetId stepIndex stepName data exitCode status at\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Schedules($first: Int, $after: String, $filter: ScheduleFilter) {\n    schedules(first: $first, after: $after, filter: $filter) {\n      edges { node { id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt\n        fireCount description job { id name } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Schedules($first: Int, $after: String, $filter: ScheduleFilter) {\n    schedules(first: $first, after: $after, filter: $filter) {\n      edges { node { id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt\n        fireCount description job { id name } } }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Schedule($id: ID!) {\n    schedule(id: $id) {\n      id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt fireCount description\n      misfirePolicy overlapPolicy dstGapPolicy dstOverlapPolicy maxRuns endAt\n      job { id name } owner { id username }\n      history(first: 50) { edges { node { id scheduledFor firedAt outcome reason lateMs execution { id number status } } } }\n    }\n  }\n"): (typeof documents)["\n  query Schedule($id: ID!) {\n    schedule(id: $id) {\n      id name kind timezone cron intervalSeconds runAt enabled nextFireAt lastFireAt fireCount description\n      misfirePolicy overlapPolicy dstGapPolicy dstOverlapPolicy maxRuns endAt\n      job { id name } owner { id username }\n      history(first: 50) { edges { node { id scheduledFor firedAt outcome reason lateMs execution { id number status } } } }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query PreviewSchedule($input: ScheduleInput!, $count: Int) {\n    previewSchedule(input: $input, count: $count) { description nextFireTimes notes }\n  }\n"): (typeof documents)["\n  query PreviewSchedule($input: ScheduleInput!, $count: Int) {\n    previewSchedule(input: $input, count: $count) { description nextFireTimes notes }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query UpcomingFires($from: DateTime!, $to: DateTime!) {\n    upcomingFires(from: $from, to: $to) { fireAt schedule { id name job { id name } } }\n  }\n"): (typeof documents)["\n  query UpcomingFires($from: DateTime!, $to: DateTime!) {\n    upcomingFires(from: $from, to: $to) { fireAt schedule { id name job { id name } } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateSchedule($input: ScheduleInput!) {\n    createSchedule(input: $input) { __typename ... on ScheduleCreated { schedule { id } } ... on Error { message } }\n  }\n"): (typeof documents)["\n  mutation CreateSchedule($input: ScheduleInput!) {\n    createSchedule(input: $input) { __typename ... on ScheduleCreated { schedule { id } } ... on Error { message } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation PauseSchedule($id: ID!) { pauseSchedule(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation PauseSchedule($id: ID!) { pauseSchedule(id: $id) { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ResumeSchedule($id: ID!) { resumeSchedule(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation ResumeSchedule($id: ID!) { resumeSchedule(id: $id) { __typename ... on Error { message } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RunScheduleNow($id: ID!) {\n    runScheduleNow(id: $id) {\n      __typename ... on ScheduleFireStarted { fire { id execution { id } } } ... on Error { message }\n    }\n  }\n"): (typeof documents)["\n  mutation RunScheduleNow($id: ID!) {\n    runScheduleNow(id: $id) {\n      __typename ... on ScheduleFireStarted { fire { id execution { id } } } ... on Error { message }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteSchedule($id: ID!) { deleteSchedule(id: $id) { __typename ... on Error { message } } }\n"): (typeof documents)["\n  mutation DeleteSchedule($id: ID!) { deleteSchedule(id: $id) { __typename ... on Error { message } } }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;