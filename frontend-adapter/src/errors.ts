// One error type for every `... on Error` result, transport failure and GraphQL error.
import type { CombinedError } from '@urql/core';

export type OpsErrorKind = 'result' | 'graphql' | 'network' | 'auth';

export class OpsError extends Error {
  readonly kind: OpsErrorKind;
  /** The union member's __typename for `... on Error` results (ValidationFailed, NotFound, ...). */
  readonly typename: string | undefined;
  /** ValidationFailed's field, when given. */
  readonly field: string | undefined;
  /** The rest of the result object (findings, targetIds, until, ...). */
  readonly details: Record<string, unknown>;

  constructor(
    message: string,
    kind: OpsErrorKind,
    opts: { typename?: string; field?: string | null; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'OpsError';
    this.kind = kind;
    this.typename = opts.typename;
    this.field = opts.field ?? undefined;
    this.details = opts.details ?? {};
  }

  static fromCombined(err: CombinedError): OpsError {
    if (err.networkError) {
      const status = (err.response as { status?: number } | undefined)?.status;
      return new OpsError(status === 401 ? 'Your session has ended; log in again.' : `Cannot reach the server: ${err.networkError.message}`,
        status === 401 ? 'auth' : 'network');
    }
    const first = err.graphQLErrors[0];
    const code = (first?.extensions?.code as string | undefined) ?? undefined;
    const kind: OpsErrorKind = code === 'UNAUTHENTICATED' ? 'auth' : 'graphql';
    return new OpsError(err.graphQLErrors.map((e) => e.message).join('; ') || err.message, kind, { typename: code });
  }
}

type Typed = { __typename?: string; message?: string; field?: string | null } & Record<string, unknown>;

/** True when a union result is one of the `Error` implementations (it carries `message`). */
export function isErrorResult(result: unknown): boolean {
  return !!result && typeof result === 'object' && typeof (result as Typed).message === 'string';
}

/**
 * The success member of a mutation/query union, or throw OpsError for an `... on Error` member.
 * `success` names the accepted __typename(s); anything else that carries a message is an error.
 */
export function unwrap<T extends Typed, K extends string>(
  result: T | null | undefined,
  success: K | readonly K[],
): Extract<T, { __typename?: K }> {
  const wanted = (Array.isArray(success) ? success : [success]) as readonly string[];
  if (!result) throw new OpsError('No result', 'graphql');
  if (result.__typename && wanted.includes(result.__typename)) return result as Extract<T, { __typename?: K }>;
  const { __typename, message, field, ...details } = result;
  throw new OpsError(message ?? `Unexpected result ${__typename ?? ''}`.trim(), 'result', {
    typename: __typename,
    field: field ?? undefined,
    details,
  });
}

/** A readable sentence for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof OpsError) return err.field ? `${err.message} (${err.field})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
