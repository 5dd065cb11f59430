// Hugging Face interop: directories, and paratrain ⇄ HF tensors for every family.
export {
  exportHuggingFace,
  fromHuggingFace,
  hfFamilyOf,
  HF_FAMILIES,
  importHuggingFace,
  toHuggingFace,
  type HfImport,
  type HfModelFiles,
} from './convert';
export { isHfBuffer, readHuggingFaceDir, writeHuggingFaceDir, type HfDirContents } from './directory';
export type { ExportOptions, HfConfig, HfFamily, HfModel } from './family';
export { HfFormatError } from './tensors';
