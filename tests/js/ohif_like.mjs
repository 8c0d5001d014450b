// What OHIF's SR viewport does with an SR (extension-cornerstone-dicom-sr: TID 1500 measurement groups, the
// region either at the group's top level or INFERRED FROM under each NUM, as processTID1410Measurement reads
// them) and what its SEG loader first reads (the segments), written with dcmjs, the library OHIF parses with.
// Usage: node ohif_like.mjs sr|seg FILE  ->  JSON on stdout
import fs from "node:fs";
import dcmjs from "dcmjs";

const [kind, file] = process.argv.slice(2);
const buffer = fs.readFileSync(file);
const dicomData = dcmjs.data.DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length));
const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicomData.dict);
const list = (x) => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
const code = (item) => list(item.ConceptNameCodeSequence)[0] || {};

function coordsOf(items) {
  for (const item of items) {
    if (item.ValueType === "SCOORD" || item.ValueType === "SCOORD3D") {
      const image = list(item.ContentSequence).find((c) => c.ValueType === "IMAGE");
      const ref = image ? list(image.ReferencedSOPSequence)[0] : undefined;
      return { points: list(item.GraphicData).length / 2, graphicType: item.GraphicType, image: ref?.ReferencedSOPInstanceUID };
    }
  }
  return null;
}

function measurementGroups() {
  const measurements = list(ds.ContentSequence).find((c) => code(c).CodeValue === "126010");
  return list(measurements?.ContentSequence).filter((c) => code(c).CodeValue === "125007");
}

function readGroup(group) {
  const items = list(group.ContentSequence);
  const text = (value) => items.find((c) => code(c).CodeValue === value)?.TextValue;
  const values = {};
  let coords = coordsOf(items); // TID 1410: the region at the group's top level
  for (const num of items.filter((c) => c.ValueType === "NUM")) {
    const children = list(num.ContentSequence);
    if (children.some((c) => c.ValueType !== "SCOORD" && c.ValueType !== "SCOORD3D")) {
      return { skipped: "a NUM has children other than a SCOORD" }; // OHIF loses the values then
    }
    const measured = list(num.MeasuredValueSequence)[0];
    values[code(num).CodeMeaning] = Number(measured?.NumericValue);
    coords = coords || coordsOf(children); // the non-geometric form: INFERRED FROM SCOORD under the NUM
  }
  const finding = items.find((c) => code(c).CodeValue === "121071");
  const evaluations = items.filter((c) => code(c).CodeValue === "C0034375");
  return {
    tracking: text("112039"),
    trackingUid: items.find((c) => code(c).CodeValue === "112040")?.UID,
    finding: list(finding?.ConceptCodeSequence)[0]?.CodeMeaning,
    values,
    coords,
    statements: evaluations.filter((c) => c.ValueType === "TEXT").map((c) => c.TextValue),
    // qualitative evaluations: CODE items other than the finding type and site
    coded: items
      .filter((c) => c.ValueType === "CODE" && !["121071", "363698007", "G-C0E3"].includes(code(c).CodeValue))
      .map((c) => list(c.ConceptCodeSequence)[0]?.CodeMeaning),
  };
}

if (kind === "sr") {
  const library = list(ds.ContentSequence).find((c) => code(c).CodeValue === "111028");
  const images = list(library?.ContentSequence).flatMap((g) => list(g.ContentSequence)).filter((c) => c.ValueType === "IMAGE");
  console.log(JSON.stringify({ groups: measurementGroups().map(readGroup), libraryImages: images.length }));
} else {
  const segments = list(ds.SegmentSequence).map((s) => ({
    number: s.SegmentNumber,
    label: s.SegmentLabel,
    trackingUid: s.TrackingUID,
    colour: list(s.RecommendedDisplayCIELabValue).length,
  }));
  const frames = list(ds.PerFrameFunctionalGroupsSequence).length;
  console.log(JSON.stringify({ segments, frames, rows: ds.Rows, columns: ds.Columns }));
}
