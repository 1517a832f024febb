import { CombinedError } from '@urql/core';
import { describe, expect, it } from 'vitest';
import { errorMessage, isErrorResult, OpsError, unwrap } from '../src/errors';

describe('unwrap', () => {
  it('returns the success member', () => {
    const r = { __typename: 'TargetCreated' as const, target: { id: '1' } };
    expect(unwrap(r, 'TargetCreated').target.id).toBe('1');
  });
  it('throws one OpsError for any `... on Error` member, keeping typename, field and details', () => {
    const r = { __typename: 'ValidationFailed', message: 'name is required', field: 'name' };
    try {
      unwrap(r as { __typename: string; message: string; field: string }, 'TargetCreated');
      throw new Error('not thrown');
    } catch (e) {
      expect(e).toBeInstanceOf(OpsError);
      const err = e as OpsError;
      expect(err.kind).toBe('result');
      expect(err.typename).toBe('ValidationFailed');
      expect(err.field).toBe('name');
      expect(errorMessage(err)).toBe('name is required (name)');
    }
    const blocked = { __typename: 'DangerousCommandBlocked', message: 'dangerous', findings: [{ rule: 'rm' }] };
    expect(() => unwrap(blocked, 'ExecutionStarted')).toThrowError(OpsError);
    expect(isErrorResult(blocked)).toBe(true);
    expect(isErrorResult({ __typename: 'ExecutionStarted' })).toBe(false);
  });
  it('maps GraphQL errors and 401s', () => {
    const gqlErr = new CombinedError({ graphQLErrors: [{ message: 'Unauthenticated', extensions: { code: 'UNAUTHENTICATED' } }] });
    expect(OpsError.fromCombined(gqlErr).kind).toBe('auth');
    const net = new CombinedError({ networkError: new Error('refused'), response: { status: 401 } });
    expect(OpsError.fromCombined(net).kind).toBe('auth');
    const down = new CombinedError({ networkError: new Error('refused') });
    expect(OpsError.fromCombined(down).kind).toBe('network');
  });
});
