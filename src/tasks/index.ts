// Fine-tuning tasks: labelled-data readers, sequences and question-answering windows, the task data
// as a Dataset, what a run settles first (labels, steps, initial weights), and the metrics.
export * from './metrics/classification';
export * from './metrics/entities';
export * from './metrics/squad';
export * from './features';
export * from './layout';
export * from './qa-features';
export * from './readers/squad';
export * from './readers/text-classification';
export * from './readers/token-classification';
export * from './evaluate';
export * from './task-data';
export * from './task-run';
