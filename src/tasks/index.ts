// Fine-tuning tasks: labelled-data readers, the tasks' metrics, and question-answering windows.
// Not yet wired to `paratrain train` (no task heads in the engine yet): docs/architecture.md.
export * from './metrics/classification';
export * from './metrics/entities';
export * from './metrics/squad';
export * from './features';
export * from './layout';
export * from './qa-features';
export * from './readers/squad';
export * from './readers/text-classification';
export * from './readers/token-classification';
