// Typed operations from the router's composed schema (router/supergraph.graphql).
// `npm run codegen` writes src/gql/; `make test` runs it with --check (drift fails, like the SDL check).
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../router/supergraph.graphql',
  documents: ['src/operations.ts'],
  ignoreNoDocuments: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { DateTime: 'string', JSON: 'unknown' },
        avoidOptionals: false,
      },
    },
  },
};
export default config;
