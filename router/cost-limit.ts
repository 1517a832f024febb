// Query cost limit (M8): every operation's estimated cost is computed from the client's document
// against the public schema (graphql-query-complexity) before anything is sent to a subgraph;
// over OPSC_ROUTER_MAX_COST the operation is refused with COST_LIMIT_EXCEEDED.
//
// Cost of a field = 1 + its children's cost, where the children count once per item:
//   - a paginated field (`first`/`last` argument given by the client) counts `first` items,
//     and the list inside its connection (`edges`, `nodes`) counts once more (the page);
//   - any other list field counts OPSC_ROUTER_COST_LIST_SIZE items (default 20);
//   - introspection (`__schema`, `__type`) is free, so GraphiQL keeps working.
// So `executions(first:500){edges{node{targetRuns{execution{targetRuns{steps{stdout}}}}}}}`
// costs about 500 * 20 * 20 * 20 * 2 = 8 000 000, while a page of runs with their targets is a
// few thousand (a page of 20 runs with every step's output: about 50 000).
import type { GatewayPlugin } from '@graphql-hive/gateway';
import {
  GraphQLError,
  getNullableType,
  isListType,
  isObjectType,
  type DocumentNode,
  type GraphQLSchema,
} from 'graphql';
import { getComplexity, type ComplexityEstimatorArgs } from 'graphql-query-complexity';

export interface CostLimitSettings {
  maxCost: number;
  listSize: number;
}

export function costLimitSettingsFromEnv(env: NodeJS.ProcessEnv): CostLimitSettings {
  const num = (name: string, fallback: number) => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isFinite(value) || value < 1) throw new Error(`${name} must be a positive number, got "${raw}"`);
    return value;
  };
  return {
    maxCost: num('OPSC_ROUTER_MAX_COST', 100_000),
    listSize: num('OPSC_ROUTER_COST_LIST_SIZE', 20),
  };
}

const PAGE_LISTS = new Set(['edges', 'nodes']);

function pageSize(args: Record<string, unknown>): number | undefined {
  for (const name of ['first', 'last']) {
    const v = args[name];
    if (typeof v === 'number' && Number.isFinite(v)) return Math.max(1, v);
  }
  return undefined;
}

function estimator(listSize: number) {
  return ({ type, field, node, args, childComplexity }: ComplexityEstimatorArgs): number => {
    if (field.name.startsWith('__') || type.name.startsWith('__')) return 0; // introspection is free
    const returned = getNullableType(field.type);
    // Only a page size the client asked for counts: a schema default such as
    // `targetRuns(first: Int = 1000)` is an upper bound, not what a page of runs costs.
    const given = new Set((node.arguments ?? []).map((a) => a.name.value));
    const size = given.has('first') || given.has('last') ? pageSize(args) : undefined;
    if (size !== undefined) return 1 + size * childComplexity;
    // A connection asked for without a page size: as many items as an unpaginated list.
    if (isObjectType(returned) && returned.name.endsWith('Connection')) return 1 + listSize * childComplexity;
    if (isListType(returned)) {
      // The page of a connection: its field's `first` already counted the items.
      if (PAGE_LISTS.has(field.name) && isObjectType(type) && type.name.endsWith('Connection')) {
        return 1 + childComplexity;
      }
      return 1 + listSize * childComplexity;
    }
    return 1 + childComplexity;
  };
}

function costError(message: string, extensions: Record<string, unknown>): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'COST_LIMIT_EXCEEDED', ...extensions } });
}

/** The operation's estimated cost; throws a GraphQLError when it cannot be computed. */
export function operationCost(
  settings: CostLimitSettings,
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | undefined | null,
  operationName: string | undefined | null,
): number {
  return getComplexity({
    schema,
    query: document,
    variables: (variables ?? {}) as Record<string, any>, // eslint-disable-line @typescript-eslint/no-explicit-any
    ...(operationName ? { operationName } : {}),
    estimators: [estimator(settings.listSize)],
  });
}

export function useCostLimit(settings: CostLimitSettings): GatewayPlugin {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const check = (args: any): GraphQLError | undefined => {
    let cost: number;
    try {
      cost = operationCost(settings, args.schema, args.document, args.variableValues, args.operationName);
    } catch (err) {
      // Fail closed: an operation whose cost cannot be computed is not run.
      const detail = err instanceof GraphQLError ? err.message : 'invalid operation';
      return costError(`cannot estimate the query cost: ${detail}`, {});
    }
    if (cost > settings.maxCost) {
      return costError(
        `query cost ${cost} exceeds the limit of ${settings.maxCost}: ask for fewer items ` +
          `(list fields count \`first\` items, or ${settings.listSize} when not paginated) or fewer nested lists`,
        { cost, maxCost: settings.maxCost },
      );
    }
    return undefined;
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}
