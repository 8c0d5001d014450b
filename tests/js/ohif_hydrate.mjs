// What OHIF 3.13 does when a radiologist opens our SR and SEG in Cornerstone3D, with the @cornerstonejs/adapters
// version it ships: the SR's groups offered for hydration (isRehydratable: a tracking identifier an adapter claims)
// and hydrated into tools (MeasurementReport.generateToolState), the SEG loaded into labelmaps over the source
// images (Segmentation.createFromDICOMSegBuffer). The source images' metadata is read from their files, with the
// defaults of Cornerstone's WADO-RS metadata provider (spacing 1, axial cosines, origin 0 when a header has none).
// Usage: node ohif_hydrate.mjs SR SEG|- SOURCE...  ->  JSON on stdout
import fs from "node:fs";
import dcmjs from "dcmjs";
import { metaData } from "@cornerstonejs/core";
import { adaptersSR, adaptersSEG } from "@cornerstonejs/adapters";

const { MeasurementReport } = adaptersSR.Cornerstone3D;
const [srFile, segFile, ...sourceFiles] = process.argv.slice(2);
const list = (x) => (x === undefined || x === null ? [] : Array.isArray(x) ? x : [x]);
const codeOf = (item) => list(item.ConceptNameCodeSequence)[0]?.CodeValue;

function read(file) {
  const buffer = fs.readFileSync(file);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length);
  const dicom = dcmjs.data.DicomMessage.readFile(arrayBuffer);
  return { arrayBuffer, ds: dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicom.dict) };
}

const sources = new Map(sourceFiles.map((file) => [`dicomfile:${file}`, read(file).ds])); // imageId -> dataset

function imagePlane(ds) {
  const spacing = list(ds.PixelSpacing ?? ds.ImagerPixelSpacing).map(Number);
  const orientation = list(ds.ImageOrientationPatient).map(Number);
  const position = list(ds.ImagePositionPatient).map(Number);
  const rowCosines = orientation.length === 6 ? orientation.slice(0, 3) : [1, 0, 0];
  const columnCosines = orientation.length === 6 ? orientation.slice(3) : [0, 1, 0];
  return {
    frameOfReferenceUID: ds.FrameOfReferenceUID,
    rows: ds.Rows,
    columns: ds.Columns,
    imageOrientationPatient: [...rowCosines, ...columnCosines],
    rowCosines,
    columnCosines,
    imagePositionPatient: position.length === 3 ? position : [0, 0, 0],
    pixelSpacing: spacing.length === 2 ? spacing : undefined,
    rowPixelSpacing: spacing[0] || 1,
    columnPixelSpacing: spacing[1] || 1,
  };
}

const modules = {
  instance: (ds) => ds,
  imagePlaneModule: imagePlane,
  generalImageModule: (ds) => ({ sopInstanceUID: ds.SOPInstanceUID, instanceNumber: ds.InstanceNumber }),
  generalSeriesModule: (ds) => ({ modality: ds.Modality, seriesInstanceUID: ds.SeriesInstanceUID }),
  imagePixelModule: (ds) => ({
    samplesPerPixel: ds.SamplesPerPixel,
    photometricInterpretation: ds.PhotometricInterpretation,
    rows: ds.Rows,
    columns: ds.Columns,
    bitsAllocated: ds.BitsAllocated,
    bitsStored: ds.BitsStored,
    highBit: ds.HighBit,
    pixelRepresentation: ds.PixelRepresentation,
  }),
};
metaData.addProvider((type, imageId) => {
  const ds = sources.get(imageId);
  return ds && modules[type] ? modules[type](ds) : undefined;
}, 10000);

// The adapters log each tool state and warn (not throw) for a group they cannot hydrate: keep the warnings.
function quietly(fn) {
  const [log, warn] = [console.log, console.warn];
  const warnings = [];
  console.log = () => {};
  console.warn = (...args) => warnings.push(args.map(String).join(" ").slice(0, 300));
  try {
    return { value: fn(), warnings };
  } finally {
    [console.log, console.warn] = [log, warn];
  }
}

function hydrate(sr) {
  const report = list(sr.ContentSequence).find((c) => codeOf(c) === "126010");
  const groups = list(report?.ContentSequence).filter((c) => codeOf(c) === "125007");
  const trackingIds = groups.map((g) => list(g.ContentSequence).find((c) => codeOf(c) === "112039")?.TextValue);
  const imageIds = {}; // OHIF's sopInstanceUIDToImageId, keyed "SOPInstanceUID:frame" as the adapters look up
  for (const [imageId, ds] of sources) imageIds[`${ds.SOPInstanceUID}:1`] = imageId;
  const { value: state, warnings } = quietly(() => MeasurementReport.generateToolState(sr, imageIds, metaData));
  const tools = Object.fromEntries(
    Object.entries(state).map(([toolType, measurements]) => [
      toolType,
      measurements.map((m) => ({
        image: m.sopInstanceUid,
        trackingUid: m.TrackingUniqueIdentifier,
        finding: list(m.finding)[0]?.CodeMeaning ?? m.finding?.CodeMeaning,
        world: m.annotation.data.handles?.points ?? [],
      })),
    ]),
  );
  return {
    groups: groups.length,
    rehydratable: trackingIds.filter((t) => t && MeasurementReport.getAdapterForTrackingIdentifier(t)).length,
    tools,
    warnings,
  };
}

async function loadSeg(file) {
  const result = await adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(
    [...sources.keys()],
    read(file).arrayBuffer,
    { metadataProvider: metaData },
  );
  const voxels = {};
  for (const images of result.labelMapImages ?? []) {
    for (const image of images) {
      for (const v of image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData()) {
        if (v) voxels[v] = (voxels[v] || 0) + 1;
      }
    }
  }
  const segments = list(result.segMetadata?.data)
    .filter(Boolean)
    .map((s) => ({ number: s.SegmentNumber, label: s.SegmentLabel, trackingUid: s.TrackingUID }));
  return { voxels, segments };
}

const out = { sr: hydrate(read(srFile).ds) };
if (segFile !== "-") out.seg = await loadSeg(segFile);
console.log(JSON.stringify(out));
