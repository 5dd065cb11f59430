// Lint: TypeScript-aware recommended rules for src/ and test/; formatting is prettier's job. Two
// structural rules: no import cycles in src/ (import-x/no-cycle), and the checkpoint package is
// imported only through its entry, src/checkpoint/index.ts (no-restricted-imports).
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const deepCheckpointImport =
  'import the checkpoint package from its entry (src/checkpoint/index.ts), not a file inside it';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'src/generated/**',
      'build/**',
      'build-cmake/**',
      'node_modules/**',
      'runs/**',
      '.paratrain-cache/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // Parse TypeScript dependencies too (the default parses only .js), and resolve './x' to x.ts.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // The generated protobuf code imports nothing of ours; no need to parse its 650 kB.
      'import-x/ignore': ['/generated/'],
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.d.ts', '.js'] })],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/checkpoint/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^(\\.\\./)+checkpoint/', message: deepCheckpointImport }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    ignores: ['test/checkpoint/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '(^|/)src/checkpoint/', message: deepCheckpointImport }] },
      ],
    },
  },
  {
    // The dashboard's page script runs in the browser, as a classic script (no modules, no build);
    // downsample.js is also required by `paratrain plot`, hence `module`.
    files: ['src/dashboard/page/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        module: 'readonly',
        window: 'readonly',
        document: 'readonly',
        EventSource: 'readonly',
        setTimeout: 'readonly',
        uPlot: 'readonly',
      },
    },
  },
  {
    files: ['bin/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
