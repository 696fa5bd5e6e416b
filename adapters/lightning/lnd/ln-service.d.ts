// Types for ln-service, which ships none: its functions are re-exports of the `lightning` package, which does.

declare module 'ln-service' {
  export * from 'lightning';
}
