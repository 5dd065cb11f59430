// proto.ts — the one door to the protobuf code generated from proto/*.proto (src/generated/, built
// by scripts/build-ts.mjs with pbjs/pbts), and the plain-data view of its messages that the rest
// of src/ works with. A field added to a .proto reaches these types at the next build.
import type Long from 'long';

export { paratrain } from './generated/proto';

/** Whether K is a data field of a generated message class (not a method, not one of protobufjs's `$` members). */
type DataKey<K, V> = K extends `$${string}` ? never : V extends (...args: never[]) => unknown ? never : K;

/** 64-bit integers as L; sub-messages are left as the generated (all-optional) properties: see With. */
type PlainValue<V, L> = Long extends V ? L : V extends readonly (infer E)[] ? PlainValue<E, L>[] : V;

/**
 * A decoded message as `toObject(msg, { defaults: true, arrays: true, longs })` returns it: every
 * field present with its protobuf default, except proto3 `optional` fields, which are absent when
 * unset; 64-bit integers are L (number with `longs: Number`, string with `longs: String`).
 */
export type Plain<C, L = number> = { [K in keyof C as DataKey<K, C[K]>]: PlainValue<NonNullable<C[K]>, L> };

/** `T` with some fields' types replaced (sub-messages filled in completely); every key must be one of T's. */
export type With<T, O extends { [K in keyof O]: K extends keyof T ? unknown : never }> = Omit<T, keyof O> & O;
