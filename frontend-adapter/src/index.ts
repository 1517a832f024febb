// Operations are written in src/operations.ts; their typed documents (XxxDocument) and every schema
// type come from the generated src/gql/graphql.ts.
export * from './client';
export * from './errors';
export * from './events';
export * from './idle';
export * from './session';
export * from './gql/graphql';
