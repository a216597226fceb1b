// Lint (part of `npm test`): the rules that catch what the type checker does not: a promise
// nobody awaits or catches (a rejection that crashes the process or vanishes), a promise where a
// callback's result is ignored, and unused code. bench/ is its own package (own dependencies,
// own tsconfig) and is not linted here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'bench/**', 'native/build/**', 'client/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-unused-expressions': 'error',
      'no-unused-private-class-members': 'error',
      'no-unreachable': 'error',
    },
  },
  // Input validation matches control characters on purpose.
  { rules: { 'no-control-regex': 'off' } },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: Object.fromEntries(['process', 'console', 'URL', 'URLSearchParams', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'fetch', 'crypto'].map((g) => [g, 'readonly'])) },
  },
  {
    // The web page's script runs in the browser.
    files: ['src/web/**/*.js'],
    languageOptions: { globals: Object.fromEntries(['window', 'document', 'location', 'navigator', 'WebSocket', 'localStorage', 'TextEncoder', 'TextDecoder'].map((g) => [g, 'readonly'])) },
  },
);
