// ESLint flat config: typescript-eslint type-aware rules over every TypeScript file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // The dashboard's page (dashboard/) is plain browser JavaScript and is linted as such, below.
  { ignores: ['dist/**', 'node_modules/**', '.ci/**', 'bench/results/**', 'test-results/**', 'examples/**/*.py', '**/*.js', '**/*.mjs', '**/*.cjs', '!dashboard/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/describe() return promises the runner awaits itself.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'List exports by name; no `export *`.' },
        { selector: "CallExpression[callee.property.name='only']", message: 'Remove `.only` before committing.' },
      ],
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^(fs|http|http2|net|tls|path|os|crypto|stream|events|url|util|child_process|dns|zlib|assert|buffer|timers|worker_threads|readline)(/.*)?$', message: 'Use the node: protocol.' }] },
      ],
    },
  },
  {
    // A sidecar's modules take node:fs and node:http from src/util/builtins.ts and builtin-http.ts: an
    // ES module import of either reads its lazy exports, which on Node 24 loads Node's bundled undici,
    // HTTP/2 and TLS (14 MB).
    files: ['src/**/*.ts'],
    ignores: ['**/*.test.ts', 'src/util/builtins.ts', 'src/util/builtin-http.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: ['node:fs', 'node:http'].map((name) => ({
            name,
            allowTypeImports: true,
            message: `Import ${name}'s functions from src/util/builtins.ts or builtin-http.ts (an ES module import of it loads modules a sidecar does not use).`,
          })),
        },
      ],
    },
  },
  {
    // Browser ES modules, not type-checked: ESLint's recommended rules with the browser's globals.
    files: ['dashboard/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      sourceType: 'module',
      ecmaVersion: 2023,
      parserOptions: { projectService: false, program: null },
      globals: Object.fromEntries(
        ['window', 'document', 'EventSource', 'HTMLElement', 'Option', 'URLSearchParams', 'ResizeObserver', 'requestAnimationFrame', 'setTimeout', 'clearTimeout', 'console'].map((name) => [name, 'readonly']),
      ),
    },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-undef': 'error',
    },
  },
);
