namespace GenService.Api.Tests.Infrastructure;

// Collection fixtures rather than assembly fixtures: a host (and its model load) is only started when a
// test that needs it runs, so a filtered run of fake-repository tests never waits for ONNX models.

/// <summary>
/// Tests over the shipped models/: <c>[Collection(RealModels.Name)] public sealed class XTests(GenServiceFactory factory)</c>.
/// One <see cref="GenServiceFactory"/> is shared by every class in the collection (they run one after another).
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealModels : ICollectionFixture<GenServiceFactory>
{
    public const string Name = "real models";
}

/// <summary>Tests over the tiny TestModels/: <c>[Collection(TestModels.Name)] ... (TestModelsFactory fixture)</c>.</summary>
[CollectionDefinition(Name)]
public sealed class TestModels : ICollectionFixture<TestModelsFactory>
{
    public const string Name = "test models";
}
