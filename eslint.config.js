// ESLint flat config: typescript-eslint type-aware rules over every TypeScript file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.ci/**', 'bench/results/**', 'examples/**/*.py', '**/*.js', '**/*.mjs', '**/*.cjs'] },
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
);
